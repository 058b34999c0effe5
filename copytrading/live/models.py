"""The live settings room's rows: one settings record (django-solo) and the
per-portfolio halts. They belong to the ``copytrading`` app (imported by
copytrading/models.py, like the notifications room's), so the fan-out can
read them and every app above can too. Code reads them through
``copytrading.live.current()``, never directly."""

from decimal import Decimal

from django.conf import settings
from django.core.signals import setting_changed
from django.db import models
from django.db.models import Q
from solo.models import SingletonModel

MONEY = {"max_digits": 28, "decimal_places": 8}
PCT = {"max_digits": 5, "decimal_places": 2}
REASON_MAX = 300  # fits Execution.reason_detail


def _env(name: str, default):
    """The environment's value of a knob that used to be an env var: the
    record's first value (its column default stays a constant)."""
    return getattr(settings, name, default)


def initial_values() -> dict:
    """The values a fresh record is created with."""
    return {
        "margin_call_level_pct": Decimal(str(_env("RISK_MARGIN_CALL_LEVEL_PCT", "110"))),
        "notify_trade_copied": bool(_env("NOTIFY_TRADE_COPIED", False)),
        "catalog_cache_seconds": int(_env("CATALOG_CACHE_SECONDS", 5)),
    }


class LiveSettings(SingletonModel):
    """What staff change without a deploy (SPEC §9, issue #16 §2). One row."""

    # Kill switch: pause every copy of every portfolio (docs/decisions.md §72).
    copying_halted = models.BooleanField(
        default=False, help_text="Pause all copying: every leader order is skipped for every follower."
    )
    copying_halted_reason = models.CharField(
        max_length=REASON_MAX, blank=True, help_text="Shown to followers; required while copying is halted."
    )
    copying_halted_at = models.DateTimeField(null=True, blank=True, editable=False)
    copying_halted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    # Watchdog thresholds.
    margin_call_level_pct = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        default=Decimal("110"),
        help_text="Default margin-call threshold (margin level %, 100 to 1000); a subscription may set its own.",
    )
    # Subscribing.
    min_investment = models.DecimalField(
        **MONEY,
        default=Decimal("0"),
        help_text="Smallest amount any copy starts with (a portfolio may ask for more).",
    )
    # Notification defaults.
    notify_trade_copied = models.BooleanField(
        default=False, help_text='Send "trade copied" notifications (each follower may still turn them off).'
    )
    # The default fee and limits groups (leaders without an assignment) are
    # created with these.
    default_max_profit_share_pct = models.DecimalField(
        **PCT, default=Decimal("50.00"), help_text="Default groups' cap on a leader's profit share (%)."
    )
    default_platform_cut_pct = models.DecimalField(
        **PCT, default=Decimal("20.00"), help_text="Default fee group's platform cut of every fee (%)."
    )
    default_max_followers = models.PositiveIntegerField(
        default=1000, help_text="Default limits group's followers per portfolio."
    )
    # Public catalog.
    catalog_cache_seconds = models.PositiveIntegerField(
        default=5, help_text="How long a public catalog page is served from the cache (0: never; at most 3600)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "live settings"
        verbose_name_plural = "live settings"
        constraints = [
            models.CheckConstraint(
                name="live_halt_needs_reason", condition=Q(copying_halted=False) | ~Q(copying_halted_reason="")
            ),
            models.CheckConstraint(
                name="live_margin_call_range",
                condition=Q(margin_call_level_pct__gte=100, margin_call_level_pct__lte=1000),
            ),
            models.CheckConstraint(name="live_min_investment_non_negative", condition=Q(min_investment__gte=0)),
            models.CheckConstraint(
                name="live_max_share_range",
                condition=Q(default_max_profit_share_pct__gte=0, default_max_profit_share_pct__lte=100),
            ),
            models.CheckConstraint(
                name="live_platform_cut_range",
                condition=Q(default_platform_cut_pct__gte=0, default_platform_cut_pct__lte=100),
            ),
            models.CheckConstraint(name="live_max_followers_positive", condition=Q(default_max_followers__gte=1)),
            models.CheckConstraint(
                name="live_catalog_cache_range",
                condition=Q(catalog_cache_seconds__gte=0, catalog_cache_seconds__lte=3600),
            ),
        ]

    def __str__(self) -> str:
        return "Live settings"

    @classmethod
    def get_solo(cls) -> "LiveSettings":
        """The record, created with ``initial_values()`` the first time (the
        admin's change page and the services call this)."""
        obj, _ = cls.objects.get_or_create(pk=cls.singleton_instance_id, defaults=initial_values())
        return obj


class PortfolioHalt(models.Model):
    """Copying of one portfolio is halted (the core refers to portfolios by
    id). Deleted on resume; the audit trail keeps the history."""

    portfolio_id = models.BigIntegerField(unique=True)
    reason = models.CharField(max_length=REASON_MAX)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at"]
        constraints = [models.CheckConstraint(name="portfolio_halt_needs_reason", condition=~Q(reason=""))]

    def __str__(self) -> str:
        return f"Portfolio #{self.portfolio_id} halted: {self.reason}"


def _saved(**kwargs) -> None:
    """A save or delete of the record or a halt: this process reads it anew
    now and after the commit (a read between the two would cache the old
    row); other processes within ``live.CACHE_SECONDS``."""
    from copytrading import live
    from copytrading.outages import after_commit

    live.invalidate()
    after_commit(live.invalidate, what="live settings cache invalidation")


for _model in (LiveSettings, PortfolioHalt):
    models.signals.post_save.connect(_saved, sender=_model, dispatch_uid=f"live-saved-{_model.__name__}")
    models.signals.post_delete.connect(_saved, sender=_model, dispatch_uid=f"live-deleted-{_model.__name__}")


def _setting_changed(*, setting: str, **kwargs) -> None:
    """A test changing an env knob's setting (the record's initial value)
    is seen at once while no record was saved."""
    if setting in ("RISK_MARGIN_CALL_LEVEL_PCT", "NOTIFY_TRADE_COPIED", "CATALOG_CACHE_SECONDS"):
        from copytrading import live

        live.invalidate()


setting_changed.connect(_setting_changed, dispatch_uid="live-setting-changed")
