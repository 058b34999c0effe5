from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from copytrading.models import MONEY, Account
from copytrading.sizing import SizingModel
from portfolios.models import Portfolio


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ENDED = "ended", "Ended"


def profit_share_due(portfolio_pct: Decimal, agreed_pct: Decimal | None) -> Decimal:
    """The share a copy pays: never more than the follower agreed to."""
    return portfolio_pct if agreed_pct is None else min(portfolio_pct, agreed_pct)


class Subscription(models.Model):
    """A follower copying a portfolio through an isolated copy wallet."""

    follower = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscriptions")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.PROTECT, related_name="subscriptions")
    copy_account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="subscription")
    status = models.CharField(max_length=6, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    pause_reason = models.CharField(max_length=50, blank=True)
    sizing_model = models.CharField(
        max_length=12, choices=[(m, m) for m in SizingModel.ALL], default=SizingModel.PROGRESSIVE
    )
    multiplier = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    fixed_notional = models.DecimalField(**MONEY, null=True, blank=True)
    risk_factor = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    leverage_override = models.PositiveSmallIntegerField(null=True, blank=True)
    copy_margin = models.BooleanField(default=True)
    copy_spot = models.BooleanField(default=True)
    # Slippage protection: an opening copy whose fill price is more than this
    # many percent away from the leader's fill is rejected (SLIPPAGE_EXCEEDED).
    slippage_tolerance_pct = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("1.00"))
    invested = models.DecimalField(**MONEY, default=0)
    # The profit share (a percent) the follower agreed to at subscribe. A fee
    # uses the lower of this and the portfolio's current share: a leader's cut
    # applies to everyone at once, a raise only to followers who join after it.
    # Null on subscriptions older than the field: the portfolio's share.
    agreed_profit_share_pct = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Why it ended: "unfollowed" by the follower, or the caller's reason
    # (e.g. the portfolio closing), shown in the API.
    end_reason = models.CharField(max_length=200, blank=True)
    # The template the settings were copied from at subscribe ("balanced",
    # or a custom template's id); informative only, nothing follows it.
    template_ref = models.CharField(max_length=40, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["follower", "portfolio"],
                condition=~Q(status=SubscriptionStatus.ENDED),
                name="one_live_subscription_per_portfolio",
            ),
            models.CheckConstraint(
                name="subscription_sizing_parameter_in_range",
                condition=(
                    Q(sizing_model=SizingModel.PROGRESSIVE, multiplier__gt=0, multiplier__lte=1)
                    | Q(sizing_model=SizingModel.FIXED, fixed_notional__gt=0)
                    | Q(sizing_model=SizingModel.ADAPTIVE, risk_factor__gte=0, risk_factor__lte=3)
                ),
            ),
            models.CheckConstraint(
                name="subscription_slippage_tolerance_range",
                condition=Q(slippage_tolerance_pct__gte=0, slippage_tolerance_pct__lte=100),
            ),
            models.CheckConstraint(
                name="subscription_leverage_override_positive",
                condition=Q(leverage_override__isnull=True) | Q(leverage_override__gte=1),
            ),
        ]
        indexes = [models.Index(fields=["portfolio", "status", "id"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.follower} → {self.portfolio}"
