from django.conf import settings
from django.db import models
from django.db.models import Q

from copytrading.models import MONEY, Account


class PortfolioMode(models.TextChoices):
    MARGIN = "margin", "Margin"
    SPOT = "spot", "Spot"
    ALL = "all", "Margin and spot"


class PortfolioStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CLOSING = "closing", "Closing"
    ARCHIVED = "archived", "Archived"


class Portfolio(models.Model):
    """A leader's strategy: its own trading account, which followers copy."""

    leader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="portfolios")
    name = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    mode = models.CharField(max_length=6, choices=PortfolioMode.choices, default=PortfolioMode.MARGIN)
    min_investment = models.DecimalField(**MONEY, default=0)
    profit_share_pct = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    is_public = models.BooleanField(default=True)
    status = models.CharField(max_length=8, choices=PortfolioStatus.choices, default=PortfolioStatus.ACTIVE)
    trading_account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="portfolio")
    # HMAC key of the signal webhook. Stored as is (verifying needs the key
    # itself), shown once when generated; editable=False keeps it out of admin forms.
    webhook_secret = models.CharField(max_length=80, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["leader", "name"], name="portfolio_name_unique_per_leader"),
            models.CheckConstraint(name="portfolio_min_investment_non_negative", condition=Q(min_investment__gte=0)),
            models.CheckConstraint(
                name="portfolio_profit_share_range", condition=Q(profit_share_pct__gte=0, profit_share_pct__lte=100)
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
