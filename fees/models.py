"""Fee and limits groups, profit-share accruals, leader profit accounts and
withdrawals.

Like the core, fees refers to portfolios and subscriptions by id (it sits
below both apps); money lives in ``copytrading`` ledger accounts.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round

from copytrading.models import MONEY, Account, Order, Position, Transfer

PCT = {"max_digits": 5, "decimal_places": 2}


def _pct_in_range(name: str, field: str) -> models.CheckConstraint:
    return models.CheckConstraint(name=name, condition=Q(**{f"{field}__gte": 0, f"{field}__lte": 100}))


class FeeModel(models.TextChoices):
    """How a portfolio's profit share is measured (Portfolio.fee_model)."""

    # On each closed mirror with a realized profit (SPEC.md §6).
    PER_TRADE = "per_trade", "Per trade"
    # Only on the subscription's cumulative realized result above its
    # previous high: a loss must be won back before anything is charged.
    HIGH_WATER_MARK = "high_water_mark", "High-water mark"


class FeeGroup(models.Model):
    """How much a leader may charge, and the platform's cut of every fee."""

    name = models.CharField(max_length=80, unique=True)
    max_profit_share_pct = models.DecimalField(**PCT)
    platform_cut_pct = models.DecimalField(**PCT)
    # Leaders without an assignment fall into the default group.
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            _pct_in_range("fee_group_max_share_range", "max_profit_share_pct"),
            _pct_in_range("fee_group_platform_cut_range", "platform_cut_pct"),
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_fee_group"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (max {self.max_profit_share_pct} %, platform {self.platform_cut_pct} %)"


class LimitsGroup(models.Model):
    """How many followers a leader's portfolio may take, and the share cap."""

    name = models.CharField(max_length=80, unique=True)
    max_followers = models.PositiveIntegerField()
    max_profit_share_pct = models.DecimalField(**PCT)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            _pct_in_range("limits_group_max_share_range", "max_profit_share_pct"),
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_limits_group"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (max {self.max_followers} followers, max {self.max_profit_share_pct} %)"


class LeaderGroupAssignment(models.Model):
    """The groups a leader is in (absent: the default groups)."""

    leader = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="fee_assignment")
    fee_group = models.ForeignKey(FeeGroup, on_delete=models.PROTECT, related_name="assignments")
    limits_group = models.ForeignKey(LimitsGroup, on_delete=models.PROTECT, related_name="assignments")
    assigned_at = models.DateTimeField(auto_now=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.leader}: {self.fee_group.name} / {self.limits_group.name}"


class AccrualStatus(models.TextChoices):
    ACCRUED = "accrued", "Accrued (in escrow)"
    SETTLED = "settled", "Settled"
    FAILED = "failed", "Failed (needs staff)"


class FeeAccrual(models.Model):
    """The profit share of one closed mirror or one spot sell of a copy
    wallet: every input used, what was charged, and where it is (escrow until
    settled). One per source: exactly one of ``source_position`` (a closed
    margin mirror) and ``source_order`` (a spot sell) is set."""

    source_position = models.OneToOneField(
        Position, null=True, blank=True, on_delete=models.PROTECT, related_name="fee_accrual"
    )
    source_order = models.OneToOneField(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="fee_accrual"
    )
    subscription_id = models.BigIntegerField(db_index=True)
    portfolio_id = models.BigIntegerField(db_index=True)
    copy_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+", db_index=False)
    leader_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    fee_group = models.ForeignKey(FeeGroup, null=True, on_delete=models.PROTECT, related_name="+")
    # The inputs.
    # The profit charged on: the position's realized PnL (net of trading
    # fees) per trade, the gain above the high-water mark under that model.
    profit = models.DecimalField(**MONEY)
    fee_model = models.CharField(max_length=16, choices=FeeModel.choices, default=FeeModel.PER_TRADE)
    # The source's own realized PnL: the closed position's, or the spot sell's
    # (proceeds less the average cost of what was sold).
    position_pnl = models.DecimalField(**MONEY, null=True)
    # High-water mark only: the mark before this close and the subscription's
    # cumulative realized result after it (the new mark).
    mark_before = models.DecimalField(**MONEY, null=True, blank=True)
    mark_after = models.DecimalField(**MONEY, null=True, blank=True)
    portfolio_share_pct = models.DecimalField(**PCT)  # what the portfolio asks
    share_pct = models.DecimalField(**PCT)  # what applied: capped by the leader's groups
    platform_cut_pct = models.DecimalField(**PCT)
    available = models.DecimalField(**MONEY)  # the copy wallet's free balance when charged
    # The outputs. ``fee`` is below ``fee_due`` only when the wallet could not pay it all.
    fee_due = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY)
    platform_part = models.DecimalField(**MONEY)
    leader_part = models.DecimalField(**MONEY)
    status = models.CharField(max_length=8, choices=AccrualStatus.choices, default=AccrualStatus.ACCRUED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    accrued_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="accrual_exactly_one_source",
                condition=Q(source_position__isnull=False, source_order__isnull=True)
                | Q(source_position__isnull=True, source_order__isnull=False),
            ),
            models.CheckConstraint(name="accrual_profit_positive", condition=Q(profit__gt=0)),
            models.CheckConstraint(name="accrual_fee_due_positive", condition=Q(fee_due__gt=0)),
            models.CheckConstraint(name="accrual_fee_within_due", condition=Q(fee__gte=0, fee__lte=F("fee_due"))),
            models.CheckConstraint(
                name="accrual_parts_non_negative", condition=Q(platform_part__gte=0, leader_part__gte=0)
            ),
            models.CheckConstraint(
                # Rounded to the columns' places: SQLite adds them as floats.
                name="accrual_parts_sum_to_fee",
                condition=Q(fee=Round(F("platform_part") + F("leader_part"), 8)),
            ),
            _pct_in_range("accrual_share_range", "share_pct"),
            _pct_in_range("accrual_platform_cut_range", "platform_cut_pct"),
        ]
        indexes = [
            # Settlement claims the oldest accrued rows.
            models.Index(fields=["status", "id"]),
            # Leader earnings and follower fee stats read by period.
            models.Index(fields=["portfolio_id", "accrued_at"]),
            models.Index(fields=["subscription_id", "accrued_at"], name="fee_accrual_sub_time"),
        ]

    def __str__(self) -> str:
        return f"fee {self.fee} on {self.source} ({self.status})"

    @property
    def source(self) -> str:
        """What the fee came from: ``position <id>`` or ``order <id>``."""
        return source_ref(self.source_position_id, self.source_order_id)


def source_ref(position_id: int | None, order_id: int | None) -> str:
    return f"position {position_id}" if position_id is not None else f"order {order_id}"


class HighWaterMark(models.Model):
    """A subscription's high-water mark: the highest cumulative realized
    result (Σ realized PnL of its closed mirrors) a fee was charged up to."""

    subscription_id = models.BigIntegerField(unique=True)
    portfolio_id = models.BigIntegerField(db_index=True)
    copy_account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="+")
    mark = models.DecimalField(**MONEY)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(name="high_water_mark_non_negative", condition=Q(mark__gte=0))]

    def __str__(self) -> str:
        return f"subscription {self.subscription_id} mark {self.mark}"


class AuditAction(models.TextChoices):
    ACCRUED = "accrued", "Accrued"
    SETTLED = "settled", "Settled"
    FAILED = "failed", "Settlement failed"
    RESOLVED = "resolved", "Resolved by staff"


class FeeAuditEntry(models.Model):
    """Append-only trail of what happened to an accrual, with the figures used."""

    accrual = models.ForeignKey(FeeAccrual, on_delete=models.PROTECT, related_name="audit")
    action = models.CharField(max_length=10, choices=AuditAction.choices)
    detail = models.JSONField(default=dict)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "fee audit entries"

    def __str__(self) -> str:
        return f"{self.action} accrual {self.accrual_id}"


class LeaderProfitAccount(models.Model):
    """The ledger account a portfolio's settled profit share is credited to."""

    portfolio_id = models.BigIntegerField(unique=True)
    leader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="profit_accounts")
    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="leader_profit")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"portfolio {self.portfolio_id} profit account #{self.account_id}"


class LeaderWithdrawal(models.Model):
    """Earned profit share moved to the leader's main wallet: one row each."""

    leader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="fee_withdrawals")
    portfolio_id = models.BigIntegerField()
    profit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    main_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    requested_amount = models.DecimalField(**MONEY)
    amount = models.DecimalField(**MONEY)  # whole cents, rounded down
    currency = models.CharField(max_length=10)
    # No database constraint: the transfers table is partitioned by month and a
    # foreign key to it would have to include created_at. The withdrawal and its
    # transfer are written in one transaction (fees/services.py) and transfers
    # are never deleted (append-only; `partitions archive` refuses them).
    transfer = models.OneToOneField(Transfer, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    idempotency_key = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="withdrawal_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(name="withdrawal_within_request", condition=Q(amount__lte=F("requested_amount"))),
            models.UniqueConstraint(
                fields=["leader", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="one_withdrawal_per_idempotency_key",
            ),
        ]
        indexes = [models.Index(fields=["portfolio_id", "-id"])]

    def __str__(self) -> str:
        return f"withdrawal {self.amount} {self.currency} from portfolio {self.portfolio_id}"
