"""Risk limits, the watchdog's per-subscription state, risk events and
notifications.

``risk`` sits above the core and below ``followers``: it refers to a
subscription by its integer id (and pauses it through a hook that
``followers`` registers, see risk/hooks.py), never by a foreign key.
"""

from django.db import models
from django.db.models import Q, Value

from copytrading.models import MONEY

PERCENT = {"max_digits": 7, "decimal_places": 2}


class Rule(models.TextChoices):
    DAILY_LOSS_REALIZED = "daily_loss_realized", "Daily loss limit (realized PnL)"
    DAILY_LOSS_UNREALIZED = "daily_loss_unrealized", "Daily loss limit (unrealized PnL)"
    MARGIN_CALL = "margin_call", "Margin-call protection"
    MAX_DRAWDOWN = "max_drawdown", "Max drawdown stop"
    # Not a watchdog rule: the exchange reconciliation found the copy's
    # exchange account differing from the service (copytrading/exchanges/reconciliation.py).
    EXCHANGE_DRIFT = "exchange_drift", "Exchange account drift"


class Action(models.TextChoices):
    PAUSE = "pause", "Paused"
    PAUSE_AND_CLOSE = "pause_and_close", "Paused and closed every mirror"
    RESUME = "resume", "Resumed (daily reset)"
    DRIFT_REPORTED = "drift_reported", "Drift reported"
    DRIFT_REPAIRED = "drift_repaired", "Drift repaired"


class RiskLimits(models.Model):
    """A follower's limits for one subscription. No row (or a null column)
    means the rule is off, except the margin-call level, which falls back to
    the platform default (the live setting margin_call_level_pct, 110 %)."""

    subscription_id = models.BigIntegerField(primary_key=True)
    # Amounts in the primary currency: a loss of at least this much breaches.
    daily_loss_limit_realized = models.DecimalField(**MONEY, null=True, blank=True)
    daily_loss_limit_unrealized = models.DecimalField(**MONEY, null=True, blank=True)
    # Margin level = copy equity / margin in use x 100; at or below it, pause.
    margin_call_level_pct = models.DecimalField(**PERCENT, null=True, blank=True)
    max_drawdown_pct = models.DecimalField(**PERCENT, null=True, blank=True)
    # Pre-trade: refuse a copy that would open one more position than this, or
    # take total position notional above this percent of copy equity.
    max_open_positions = models.PositiveIntegerField(null=True, blank=True)
    max_exposure_pct = models.DecimalField(**PERCENT, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "risk limits"
        constraints = [
            models.CheckConstraint(
                name="risk_dll_realized_positive",
                condition=Q(daily_loss_limit_realized__isnull=True) | Q(daily_loss_limit_realized__gt=0),
            ),
            models.CheckConstraint(
                name="risk_dll_unrealized_positive",
                condition=Q(daily_loss_limit_unrealized__isnull=True) | Q(daily_loss_limit_unrealized__gt=0),
            ),
            models.CheckConstraint(
                name="risk_margin_call_level_range",
                condition=Q(margin_call_level_pct__isnull=True)
                | Q(margin_call_level_pct__gte=100, margin_call_level_pct__lte=1000),
            ),
            models.CheckConstraint(
                name="risk_max_drawdown_range",
                condition=Q(max_drawdown_pct__isnull=True) | Q(max_drawdown_pct__gt=0, max_drawdown_pct__lte=100),
            ),
            models.CheckConstraint(
                name="risk_max_open_positions_positive",
                condition=Q(max_open_positions__isnull=True) | Q(max_open_positions__gte=1),
            ),
            models.CheckConstraint(
                name="risk_max_exposure_range",
                condition=Q(max_exposure_pct__isnull=True) | Q(max_exposure_pct__gt=0, max_exposure_pct__lte=10000),
            ),
        ]

    def __str__(self) -> str:
        return f"risk limits of subscription {self.subscription_id}"


class RiskState(models.Model):
    """What the watchdog remembers between ticks for one subscription.

    Realized PnL today is not kept here: it is read from the ledger (the
    REALIZED_PNL transfers of the copy wallet since 00:00 UTC), so it is exact
    and there is no day counter to reset.
    """

    subscription_id = models.BigIntegerField(primary_key=True)
    copy_account_id = models.BigIntegerField()
    follower_id = models.BigIntegerField()
    # Under a drawdown stop: the highest copy equity since the stop was set,
    # shifted by deposits and withdrawals since (``peak_flows`` is the net
    # capital paid in when it was last set), so a withdrawal is never
    # mistaken for a drawdown.
    peak_equity = models.DecimalField(**MONEY, null=True, blank=True)
    peak_flows = models.DecimalField(**MONEY, default=0)
    # The rule that paused the subscription, and the UTC day it did (the
    # midnight reset lifts realized-loss pauses of earlier days).
    paused_by_rule = models.CharField(max_length=30, choices=Rule.choices, blank=True)
    paused_day = models.DateField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["paused_by_rule", "paused_day"], condition=~Q(paused_by_rule=""), name="risk_paused"),
        ]

    def __str__(self) -> str:
        return f"risk state of subscription {self.subscription_id}"


class RiskEvent(models.Model):
    """One intervention of the watchdog (or the daily reset): which rule, what
    it measured against which threshold, and what it did."""

    subscription_id = models.BigIntegerField()
    rule = models.CharField(max_length=30, choices=Rule.choices)
    measured = models.DecimalField(**MONEY, null=True, blank=True)
    threshold = models.DecimalField(**MONEY, null=True, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    # Mirrors closed by a pause-and-close.
    closed_positions = models.PositiveIntegerField(default=0)
    # A pause-and-close also sells the copy wallet's spot holdings (rounded
    # down to each pair's quantity step): how many it sold, and the dust it
    # had to leave behind, {asset: quantity as a string}. The follower sees
    # both on the subscription (``risk.pause_event``) and in the notification.
    # (Database defaults too: the daily reset inserts its events by COPY.)
    sold_holdings = models.PositiveIntegerField(default=0, db_default=0)
    dust = models.JSONField(default=dict, db_default=Value({}, output_field=models.JSONField()), blank=True)
    # An exchange drift: its code and what differed (blank for the watchdog's rules).
    detail = models.CharField(max_length=300, blank=True, default="", db_default="")
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["subscription_id", "-id"]), models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.rule} {self.action} sub={self.subscription_id}"


class TickStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"


class WatchdogTick(models.Model):
    """One watchdog run over every active subscription, numbered by its
    30-second slot so a second start of the same slot finds it planned."""

    number = models.BigIntegerField(unique=True)
    chunk_count = models.PositiveIntegerField(default=0)
    subscription_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"watchdog tick {self.number}"


class WatchdogChunk(models.Model):
    """A slice of a tick's subscriptions (by id range), claimed by one worker
    with FOR UPDATE SKIP LOCKED."""

    tick = models.ForeignKey(WatchdogTick, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_subscription_id = models.BigIntegerField()
    last_subscription_id = models.BigIntegerField()
    status = models.CharField(max_length=8, choices=TickStatus.choices, default=TickStatus.PENDING)
    checked = models.PositiveIntegerField(default=0)
    breaches = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tick", "index"], name="one_watchdog_chunk_per_index")]

    def __str__(self) -> str:
        return f"tick {self.tick_id} chunk {self.index} ({self.status})"
