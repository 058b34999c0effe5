from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from copytrading.models import MONEY, Account
from fees.models import FeeModel


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
    # per_trade (SPEC.md §6) or high_water_mark: see fees.models.FeeModel.
    fee_model = models.CharField(max_length=16, choices=FeeModel.choices, default=FeeModel.PER_TRADE)
    is_public = models.BooleanField(default=True)
    status = models.CharField(max_length=8, choices=PortfolioStatus.choices, default=PortfolioStatus.ACTIVE)
    trading_account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="portfolio")
    # HMAC key of the signal webhook. Stored as is (verifying needs the key
    # itself), shown once when generated; editable=False keeps it out of admin forms.
    webhook_secret = models.CharField(max_length=80, blank=True, default="", editable=False)
    # Social links, validated by portfolios/validation.py (empty: none).
    x_url = models.URLField(max_length=200, blank=True)
    telegram_url = models.URLField(max_length=200, blank=True)
    website_url = models.URLField(max_length=200, blank=True)
    # A private portfolio's 8-digit passcode, hashed (django.contrib.auth.hashers).
    passcode_hash = models.CharField(max_length=128, blank=True, default="", editable=False)
    # Lifecycle (portfolios/lifecycle.py): who started the close, why, when.
    close_reason = models.CharField(max_length=500, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closing_started_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Case-insensitive: "Alpha" and "alpha" are the same name to a reader.
            models.UniqueConstraint("leader", Lower("name"), name="portfolio_name_unique_per_leader"),
            models.CheckConstraint(
                name="portfolio_private_has_passcode", condition=Q(is_public=True) | ~Q(passcode_hash="")
            ),
            models.CheckConstraint(name="portfolio_min_investment_non_negative", condition=Q(min_investment__gte=0)),
            models.CheckConstraint(
                name="portfolio_profit_share_range", condition=Q(profit_share_pct__gte=0, profit_share_pct__lte=100)
            ),
        ]
        ordering = ["-created_at"]
        # The catalog's "newest"/"oldest" sorts (the index serves both directions).
        indexes = [models.Index(fields=["created_at"], name="portfolio_by_created")]

    def __str__(self) -> str:
        return self.name


class CopyTemplate(models.Model):
    """A leader's custom copy template for one portfolio (at most
    ``MAX_TEMPLATES_PER_PORTFOLIO``). The platform defaults live in code
    (portfolios/copy_settings.py). Subscribing copies the values: editing or
    deleting a template never changes a running copy."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="copy_templates")
    name = models.CharField(max_length=60)
    description = models.CharField(max_length=500, blank=True)
    sizing_model = models.CharField(max_length=12, default="progressive")
    multiplier = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    fixed_notional = models.DecimalField(**MONEY, null=True, blank=True)
    risk_factor = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    leverage_override = models.PositiveSmallIntegerField(null=True, blank=True)
    copy_margin = models.BooleanField(default=True)
    copy_spot = models.BooleanField(default=True)
    slippage_tolerance_pct = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("1.00"))
    # Daily loss limits in percent of the amount invested (subscribe turns
    # them into amounts); the others as in risk.RiskLimits.
    daily_loss_realized_pct = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    daily_loss_unrealized_pct = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    margin_call_level_pct = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    max_drawdown_pct = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    max_open_positions = models.PositiveIntegerField(null=True, blank=True)
    max_exposure_pct = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "name"], name="copy_template_name_unique_per_portfolio"),
            models.CheckConstraint(
                name="copy_template_sizing_parameter_in_range",
                condition=(
                    Q(sizing_model="progressive", multiplier__gt=0, multiplier__lte=1)
                    | Q(sizing_model="fixed", fixed_notional__gt=0)
                    | Q(sizing_model="adaptive", risk_factor__gte=0, risk_factor__lte=3)
                ),
            ),
        ]
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.portfolio_id})"


# --- statistics, ranking and favorites (the catalog reads these) ---------------------


class StatsLine(models.TextChoices):
    MARGIN = "margin", "Margin"
    SPOT = "spot", "Spot"
    ALL = "all", "Margin and spot"


class PortfolioStats(models.Model):
    """Precomputed figures of one product line of a portfolio (refreshed by a
    task), so the catalog filters and sorts one indexed table."""

    # Covered by the (portfolio, line) unique index: one index less to maintain
    # on every ranking write.
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="stats", db_index=False)
    line = models.CharField(max_length=6, choices=StatsLine.choices)
    pnl = models.DecimalField(**MONEY, default=0)
    roi_pct = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    win_rate_pct = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    trade_count = models.PositiveIntegerField(default=0)
    closed_count = models.PositiveIntegerField(default=0)
    win_count = models.PositiveIntegerField(default=0)
    follower_count = models.PositiveIntegerField(default=0)
    max_followers = models.PositiveIntegerField(default=0)
    max_drawdown_pct = models.DecimalField(max_digits=7, decimal_places=2, default=0)
    # The latest ranking score (0 until ranked; see PortfolioScore for history).
    score = models.DecimalField(max_digits=7, decimal_places=6, default=0)
    equity_curve = models.JSONField(default=list, blank=True)  # [[day, equity], ...]
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "line"], name="one_stats_row_per_portfolio_line"),
            models.CheckConstraint(name="stats_score_range", condition=Q(score__gte=0, score__lte=1)),
        ]
        indexes = [
            # The catalog's default sort and its tie-breaker (the portfolio id).
            models.Index(fields=["line", "score", "portfolio"], name="stats_by_score"),
            models.Index(fields=["line", "roi_pct", "portfolio"], name="stats_by_roi"),
            # The other sorts, in the order of their descending ("best first")
            # sort exactly: key descending, then the portfolio id ascending.
            # Their keys tie a lot (0 followers, no PnL yet, 50 % win rate), and an
            # index on the key alone left the planner joining and sorting every
            # row of the line: 10-100 ms a page at 10,000 portfolios, 0.2-0.6 ms
            # with these (docs/decisions.md §90).
            models.Index(fields=["line", "-pnl", "portfolio"], name="stats_by_pnl"),
            models.Index(fields=["line", "-pnl", "-score", "portfolio"], name="stats_by_pnl_score"),
            models.Index(fields=["line", "-win_rate_pct", "portfolio"], name="stats_by_win_rate"),
            models.Index(fields=["line", "-follower_count", "portfolio"], name="stats_by_followers"),
            models.Index(fields=["line", "-follower_count", "-score", "portfolio"], name="stats_by_followers_score"),
        ]
        verbose_name_plural = "portfolio stats"

    def __str__(self) -> str:
        return f"{self.portfolio_id}/{self.line}: pnl {self.pnl}, score {self.score}"


class PortfolioScore(models.Model):
    """One ranking of one portfolio: the score and its components (history)."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="scores", db_index=False)
    computed_at = models.DateTimeField()
    score = models.DecimalField(max_digits=7, decimal_places=6)
    win_rate = models.DecimalField(max_digits=7, decimal_places=6)
    follower_health = models.DecimalField(max_digits=7, decimal_places=6)
    profitability = models.DecimalField(max_digits=7, decimal_places=6)
    consistency = models.DecimalField(max_digits=7, decimal_places=6)
    activity = models.DecimalField(max_digits=7, decimal_places=6)
    popularity = models.DecimalField(max_digits=7, decimal_places=6)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "computed_at"], name="one_score_per_portfolio_run"),
            models.CheckConstraint(name="score_range", condition=Q(score__gte=0, score__lte=1)),
        ]
        indexes = [models.Index(fields=["portfolio", "-computed_at"], name="score_history")]

    def __str__(self) -> str:
        return f"{self.portfolio_id} @ {self.computed_at:%Y-%m-%d %H:%M}: {self.score}"


class FollowerDailyStats(models.Model):
    """The average follower of a portfolio on one day ("the average follower
    earned X"): a snapshot the stats refresh updates during the day."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="follower_days", db_index=False)
    day = models.DateField()
    followers = models.PositiveIntegerField()
    average_pnl = models.DecimalField(**MONEY)
    average_roi_pct = models.DecimalField(max_digits=16, decimal_places=2)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portfolio", "day"], name="one_follower_day_per_portfolio")]
        verbose_name_plural = "follower daily stats"

    def __str__(self) -> str:
        return f"{self.portfolio_id} {self.day}: {self.average_pnl}"


class Favorite(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favorites", db_index=False
    )
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="favorited_by")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "portfolio"], name="one_favorite_per_user_portfolio")]

    def __str__(self) -> str:
        return f"{self.user_id} ♥ {self.portfolio_id}"


class PasscodeThrottle(models.Model):
    """Wrong-passcode attempts of one user or one client address (over all
    portfolios), against one portfolio (over all users), or of one user / one
    address on one portfolio. portfolios/passcodes.py counts an attempt
    under the row lock *before* checking the passcode, so parallel requests
    can never get more than the limit checked."""

    class Scope(models.TextChoices):
        USER = "user", "User"
        ADDRESS = "address", "Client address"
        PORTFOLIO = "portfolio", "Portfolio"
        USER_PORTFOLIO = "user_pf", "User on one portfolio"
        ADDRESS_PORTFOLIO = "addr_pf", "Client address on one portfolio"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    # A user or portfolio id; for an address or a pair, a 63-bit hash of it.
    subject_id = models.BigIntegerField()
    attempts = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "subject_id"], name="passcode_throttle_one_row_per_subject")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.subject_id}: {self.attempts}"
