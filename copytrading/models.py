"""The trading core: ledger, instruments, orders/positions/holdings, leader
events and the execution log.

The core never imports the apps above it; it refers to portfolios and
subscriptions by id (see docs/decisions.md).
"""

from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from copytrading import leader_events, trade_math

# The auth room's rows belong to this app (copytrading/auth/models.py).
from copytrading.auth.models import AuthToken, LoginThrottle  # noqa: F401

# So are the linked exchange accounts (copytrading/exchanges/models.py).
from copytrading.exchanges.models import (  # noqa: F401
    ExchangeAccount,
    ExchangeDrift,
    ExchangeOrder,
    LeaderTradeCursor,
    LeaderTradePoll,
)
from copytrading.live.models import LiveSettings, PortfolioHalt  # noqa: F401  (the live settings room's)
from copytrading.money import FRACTION_PLACES

# So are the notifications room's (copytrading/notifications/models.py).
from copytrading.notifications.models import Notification, NotificationPreference  # noqa: F401

MONEY = {"max_digits": 28, "decimal_places": 8}
ZERO = Decimal("0")


class AccountKind(models.TextChoices):
    MAIN = "MAIN", "Main wallet"
    COPY = "COPY", "Copy wallet"
    LEADER_TRADING = "LEADER_TRADING", "Leader trading account"
    LEADER_PROFIT = "LEADER_PROFIT", "Leader profit account"
    PLATFORM_FEES = "PLATFORM_FEES", "Platform fees"
    FEE_ESCROW = "FEE_ESCROW", "Fee escrow"
    VENUE = "VENUE", "Venue (counterparty)"
    EXTERNAL = "EXTERNAL", "External (deposits and withdrawals)"


# The only kinds whose balance may go below zero: they are the outside world.
UNBOUNDED_KINDS = (AccountKind.VENUE, AccountKind.EXTERNAL)


class Account(models.Model):
    """A ledger account in the primary currency.

    ``balance`` is a cache of the account's transfers; ``locked`` is the part of
    it held as margin by open positions and reserved by resting limit orders,
    so ``balance - locked`` is free.
    """

    kind = models.CharField(max_length=20, choices=AccountKind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts"
    )
    name = models.CharField(max_length=120, blank=True)
    currency = models.CharField(max_length=10)
    balance = models.DecimalField(**MONEY, default=ZERO)
    locked = models.DecimalField(**MONEY, default=ZERO)
    is_closed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # The linked exchange account this ledger account trades on (a leader's
    # trading account, a follower's copy wallet); null: the paper venue.
    # copytrading.venues routes by it. One open account per exchange account:
    # positions on an exchange are per account and symbol, so two wallets on
    # one key would net each other's trades.
    exchange_account = models.ForeignKey(
        "ExchangeAccount", null=True, blank=True, on_delete=models.PROTECT, related_name="bound_accounts"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["exchange_account"],
                condition=Q(exchange_account__isnull=False, is_closed=False),
                name="one_open_account_per_exchange_account",
            ),
            models.CheckConstraint(
                name="account_balance_non_negative",
                condition=Q(balance__gte=0) | Q(kind__in=UNBOUNDED_KINDS),
            ),
            models.CheckConstraint(name="account_locked_non_negative", condition=Q(locked__gte=0)),
            models.CheckConstraint(
                name="account_locked_within_balance",
                condition=Q(locked__lte=F("balance")) | Q(kind__in=UNBOUNDED_KINDS),
            ),
            models.UniqueConstraint(
                fields=["user"], condition=Q(kind=AccountKind.MAIN), name="one_main_wallet_per_user"
            ),
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(
                    kind__in=[
                        AccountKind.VENUE,
                        AccountKind.EXTERNAL,
                        AccountKind.PLATFORM_FEES,
                        AccountKind.FEE_ESCROW,
                    ]
                ),
                name="one_system_account_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} {self.name}".strip()

    @property
    def free(self) -> Decimal:
        return self.balance - self.locked


class TransferKind(models.TextChoices):
    DEPOSIT = "DEPOSIT", "Deposit"
    WITHDRAWAL = "WITHDRAWAL", "Withdrawal"
    COPY_FUND = "COPY_FUND", "Copy wallet funding"
    COPY_RETURN = "COPY_RETURN", "Copy wallet return"
    LEADER_FUND = "LEADER_FUND", "Leader trading account funding"
    # A portfolio archived: what is left in its trading account goes back to the leader's main wallet.
    LEADER_RETURN = "LEADER_RETURN", "Leader trading account return"
    REALIZED_PNL = "REALIZED_PNL", "Realized PnL"
    SPOT_TRADE = "SPOT_TRADE", "Spot trade"
    TRADING_FEE = "TRADING_FEE", "Trading fee"
    # The fees app: copy wallet -> escrow -> leader profit / platform -> leader main.
    PROFIT_SHARE = "PROFIT_SHARE", "Profit share (into escrow)"
    FEE_SETTLE_LEADER = "FEE_SETTLE_LEADER", "Profit share to the leader"
    FEE_SETTLE_PLATFORM = "FEE_SETTLE_PLATFORM", "Profit share to the platform"
    LEADER_WITHDRAWAL = "LEADER_WITHDRAWAL", "Leader profit withdrawal"
    # A leader's trading account bound to an exchange account mirrors the
    # exchange's balance: set at bind (from the external account), returned at unbind.
    EXCHANGE_SYNC = "EXCHANGE_SYNC", "Exchange balance sync"


class Transfer(models.Model):
    """An append-only, balanced movement: ``amount`` leaves ``debit`` and
    arrives at ``credit``. Corrections are new transfers, never edits."""

    debit = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="debits")
    credit = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="credits")
    amount = models.DecimalField(**MONEY)
    kind = models.CharField(max_length=20, choices=TransferKind.choices)
    # Unique through TransferKey (a partitioned table cannot hold a unique
    # index without its partition key); indexed here for look-ups by key.
    idempotency_key = models.CharField(max_length=200)
    ref = models.CharField(max_length=200, blank=True)
    # The partition key on PostgreSQL (copytrading/partitions.py).
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="transfer_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(name="transfer_distinct_accounts", condition=~Q(debit=F("credit"))),
        ]
        indexes = [
            models.Index(fields=["idempotency_key"], name="transfer_by_idempotency_key"),
            # The back office's fee figures by day (backoffice/dashboard.py):
            # partial, so the hot path's other transfers never touch it.
            models.Index(
                fields=["created_at"],
                condition=Q(
                    kind__in=[
                        TransferKind.PROFIT_SHARE,
                        TransferKind.FEE_SETTLE_LEADER,
                        TransferKind.FEE_SETTLE_PLATFORM,
                    ]
                ),
                name="transfer_fee_by_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} #{self.debit_id}->#{self.credit_id}"


class TransferKey(models.Model):
    """The ledger's idempotency: one row per transfer, keyed by its idempotency
    key. The transfers table is partitioned by month on PostgreSQL and can only
    be unique on keys that include ``created_at``; this narrow, unpartitioned
    table is where a key is unique. A database trigger writes it in the same
    statement as the transfer (migration copytrading 0024, PostgreSQL and
    SQLite alike), so no writer can skip it and the hot path adds no round
    trip; a replayed key fails that statement with an IntegrityError, exactly
    as the unique column did. Never written by the application."""

    idempotency_key = models.CharField(max_length=200, primary_key=True)
    transfer_id = models.BigIntegerField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.idempotency_key} -> transfer #{self.transfer_id}"


class Product(models.TextChoices):
    MARGIN = "margin", "Margin"
    SPOT = "spot", "Spot"


class MarkFlag(models.TextChoices):
    """Why the current mark is not trusted for liquidations (blank: it is)."""

    NONE = "", "Trusted"
    JUMP = "jump", "Jumped beyond the sanity band"
    STALE = "stale", "Stale"


class Instrument(models.Model):
    """A tradable market with the venue's constraints and its latest price.

    ``exchange`` is the ccxt id it was synced from (``sync_instruments``),
    blank for the local ones (seeded, simulated); ``exchange_symbol`` the
    exchange's own market id. Quantities are in the base asset:
    ``contract_size`` is how much base one exchange contract is (OKX's ctVal),
    for the venue that converts. An instrument the exchange no longer lists is
    halted (``is_active`` false), never deleted."""

    symbol = models.CharField(max_length=40, unique=True)
    product = models.CharField(max_length=10, choices=Product.choices)
    base = models.CharField(max_length=10)
    quote = models.CharField(max_length=10)
    qty_step = models.DecimalField(**MONEY)
    min_qty = models.DecimalField(**MONEY)
    max_qty = models.DecimalField(**MONEY)
    price_tick = models.DecimalField(**MONEY)
    min_notional = models.DecimalField(**MONEY)
    max_leverage = models.PositiveSmallIntegerField(default=1)
    mark_price = models.DecimalField(**MONEY, null=True, blank=True)
    price_updated_at = models.DateTimeField(null=True, blank=True)
    mark_flag = models.CharField(max_length=10, choices=MarkFlag.choices, default=MarkFlag.NONE, blank=True)
    is_active = models.BooleanField(default=True)
    exchange = models.CharField(max_length=40, blank=True, default="")
    exchange_symbol = models.CharField(max_length=60, blank=True, default="")
    contract_size = models.DecimalField(**MONEY, default=Decimal("1"))
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(name="instrument_step_positive", condition=Q(qty_step__gt=0)),
            models.CheckConstraint(name="instrument_tick_positive", condition=Q(price_tick__gt=0)),
            models.CheckConstraint(name="instrument_min_le_max", condition=Q(min_qty__lte=F("max_qty"))),
            models.CheckConstraint(name="instrument_leverage_positive", condition=Q(max_leverage__gte=1)),
            models.CheckConstraint(name="instrument_price_positive", condition=Q(mark_price__gt=0)),
            models.CheckConstraint(name="instrument_contract_size_positive", condition=Q(contract_size__gt=0)),
        ]

    def __str__(self) -> str:
        return self.symbol

    @property
    def mark_trusted(self) -> bool:
        """Whether liquidations may act at the current mark (not flagged)."""
        return not self.mark_flag

    def reserved_asset(self, side: str) -> str | None:
        """The holding a resting order of ``side`` reserves from, or None for
        the primary currency (``Account.locked``): see ``trade_math.reserved_asset``."""
        return trade_math.reserved_asset(
            spot=self.product == Product.SPOT, side=side, base=self.base, quote=self.quote,
            primary=settings.PRIMARY_CURRENCY,
        )  # fmt: skip


class PriceCandle(models.Model):
    """One minute of an instrument's marks (open, high, low, close of the marks
    written in it; ``ticks`` of them), for charts and replays. Written after
    each mark's commit (``copytrading.candles``), purged past
    ``CANDLE_RETENTION_DAYS``."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="candles")
    minute = models.DateTimeField()  # the minute's start, UTC
    open = models.DecimalField(**MONEY)
    high = models.DecimalField(**MONEY)
    low = models.DecimalField(**MONEY)
    close = models.DecimalField(**MONEY)
    first_at = models.DateTimeField()  # when the open and the close were marked:
    last_at = models.DateTimeField()  # a late writer never overwrites a newer close
    ticks = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["instrument", "minute"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "minute"], name="price_candle_one_per_minute"),
            models.CheckConstraint(
                name="price_candle_ohlc_ordered",
                condition=Q(low__gt=0)
                & Q(low__lte=F("open"))
                & Q(low__lte=F("close"))
                & Q(high__gte=F("open"))
                & Q(high__gte=F("close")),
            ),
        ]
        indexes = [models.Index(fields=["minute"], name="price_candle_minute")]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.minute:%Y-%m-%d %H:%M}"


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class PositionSide(models.TextChoices):
    LONG = "long", "Long"
    SHORT = "short", "Short"


class PositionStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Position(models.Model):
    """An isolated-margin position. A mirror points at the leader position it
    copies; the realized loss of an isolated position is capped at its margin."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    # Index maintenance is the hot path's main database cost: only the indexes
    # that queries use are kept (leader_position is covered by the composites).
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, db_index=False)
    side = models.CharField(max_length=5, choices=PositionSide.choices)
    quantity = models.DecimalField(**MONEY)
    opened_quantity = models.DecimalField(**MONEY)
    entry_price = models.DecimalField(**MONEY)
    leverage = models.PositiveSmallIntegerField()
    margin = models.DecimalField(**MONEY)
    status = models.CharField(max_length=6, choices=PositionStatus.choices, default=PositionStatus.OPEN)
    realized_pnl = models.DecimalField(**MONEY, default=ZERO)
    leader_position = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="mirrors", db_index=False
    )
    subscription_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # One take-profit and one stop-loss per position (multi-level is out of
    # scope); a price update that crosses either closes the position at market.
    take_profit = models.DecimalField(**MONEY, null=True, blank=True)
    stop_loss = models.DecimalField(**MONEY, null=True, blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="position_quantity_non_negative", condition=Q(quantity__gte=0)),
            models.CheckConstraint(name="position_margin_non_negative", condition=Q(margin__gte=0)),
            models.CheckConstraint(name="position_leverage_positive", condition=Q(leverage__gte=1)),
            # One open position per instrument for a leader's own account
            # (one-way mode), one open mirror per leader position per wallet.
            models.UniqueConstraint(
                fields=["account", "instrument"],
                condition=Q(status=PositionStatus.OPEN, leader_position__isnull=True),
                name="one_open_own_position_per_instrument",
            ),
            models.UniqueConstraint(
                fields=["account", "leader_position"],
                condition=Q(status=PositionStatus.OPEN),
                name="one_open_mirror_per_leader_position",
            ),
        ]
        indexes = [
            models.Index(fields=["leader_position", "status"]),
            # The hot path finds a chunk's mirrors by subscription id range.
            models.Index(
                fields=["leader_position", "subscription_id"],
                condition=Q(status=PositionStatus.OPEN),
                name="open_mirror_by_subscription",
            ),
            # Every price update scans the instrument's open positions for
            # TP/SL and liquidation.
            models.Index(
                fields=["instrument"], condition=Q(status=PositionStatus.OPEN), name="open_position_by_instrument"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.instrument_id} @ {self.entry_price}"


class Holding(models.Model):
    """A spot balance of a base asset (the primary currency lives in the ledger)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holdings")
    asset = models.CharField(max_length=10)
    quantity = models.DecimalField(**MONEY, default=ZERO)
    cost_basis = models.DecimalField(**MONEY, default=ZERO)
    # The part of ``quantity`` resting spot limit orders hold until they fill
    # or are cancelled: sells of this asset, and buys of a pair quoted in it
    # (see copytrading.reservations). Only the rest can be sold or spent.
    reserved = models.DecimalField(**MONEY, default=ZERO)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "asset"], name="one_holding_per_asset"),
            models.CheckConstraint(name="holding_non_negative", condition=Q(quantity__gte=0)),
            models.CheckConstraint(
                name="holding_reserved_within_quantity", condition=Q(reserved__gte=0, reserved__lte=F("quantity"))
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.asset}"

    @property
    def free(self) -> Decimal:
        return self.quantity - self.reserved


class OrderStatus(models.TextChoices):
    # Sent (or about to be sent) to an exchange, not yet confirmed: it holds
    # its margin in ``reserved`` like a resting limit, and its fill arrives
    # through copytrading.exchanges.outcomes (see ExchangeOrder).
    PENDING = "pending", "Pending (at an exchange, not yet confirmed)"
    OPEN = "open", "Open (resting)"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"


class OrderType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"
    TAKE_PROFIT = "take_profit", "Take-profit trigger"
    STOP_LOSS = "stop_loss", "Stop-loss trigger"
    LIQUIDATION = "liquidation", "Liquidation"


class Order(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, db_index=False)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=12, choices=OrderType.choices, default=OrderType.MARKET)
    quantity = models.DecimalField(**MONEY)
    price = models.DecimalField(**MONEY)
    leverage = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=OrderStatus.choices, default=OrderStatus.FILLED)
    position = models.ForeignKey(Position, null=True, blank=True, on_delete=models.PROTECT, related_name="orders")
    # Covered by the (leader_event, subscription_id) unique index.
    leader_event = models.ForeignKey(
        "LeaderEvent", null=True, blank=True, on_delete=models.PROTECT, related_name="mirror_orders", db_index=False
    )
    subscription_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # A mirror limit order points at the leader's limit order it copies
    # (re-priced and cancelled with it). Covered by the unique index below.
    leader_order = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="mirror_orders", db_index=False
    )
    # What a resting limit order holds until it fills or is cancelled (0 once
    # it no longer rests), in the asset it pays with: margin or the primary
    # currency in ``Account.locked``, else a holding's ``reserved`` (a spot
    # sell's base quantity; see copytrading.reservations).
    reserved = models.DecimalField(**MONEY, default=ZERO)
    created_at = models.DateTimeField(auto_now_add=True)
    # When it filled (a resting limit fills after it was placed); null while
    # it rests, or if it never filled.
    filled_at = models.DateTimeField(null=True, blank=True)
    # What the fill realized in the primary currency, set on every fill that
    # realizes: a margin reduce or close (the position's settled PnL part), a
    # spot sell (proceeds less the average cost of what was sold). Null on
    # fills that realize nothing (opens, increases, buys, cross-quote sells).
    realized_pnl = models.DecimalField(**MONEY, null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="order_quantity_positive", condition=Q(quantity__gt=0)),
            models.CheckConstraint(name="order_price_positive", condition=Q(price__gt=0)),
            models.CheckConstraint(name="order_reserved_non_negative", condition=Q(reserved__gte=0)),
            models.UniqueConstraint(
                fields=["leader_order", "subscription_id"],
                condition=Q(leader_order__isnull=False),
                name="one_mirror_order_per_leader_order_and_subscription",
            ),
            # A leader event produces at most one order per follower.
            models.UniqueConstraint(
                fields=["leader_event", "subscription_id"],
                condition=Q(leader_event__isnull=False),
                name="one_mirror_order_per_event_and_subscription",
            ),
        ]
        # Every price update looks for the instrument's resting orders.
        indexes = [
            models.Index(
                fields=["instrument", "price"], condition=Q(status=OrderStatus.OPEN), name="open_order_by_price"
            ),
            # The watchdog sums a wallet's spot sells of the day (a spot
            # order has no position; margin PnL is read from the ledger).
            models.Index(
                fields=["account", "filled_at"],
                condition=Q(realized_pnl__isnull=False, position__isnull=True),
                name="spot_realization_by_day",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.instrument_id} @ {self.price}"


# Declared once, in the pure contract module (copytrading.leader_events).
LeaderEventKind = models.TextChoices(
    "LeaderEventKind", [(kind.name, (kind.value, leader_events.LABELS[kind])) for kind in leader_events.Kind]
)


class LeaderEventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROPAGATING = "propagating", "Propagating"
    DONE = "done", "Done"


class LeaderEvent(models.Model):
    """The outbox: written in the same transaction as the leader's change."""

    portfolio_id = models.BigIntegerField(db_index=True)
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=20, choices=LeaderEventKind.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=LeaderEventStatus.choices, default=LeaderEventStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portfolio_id", "seq"], name="one_seq_per_portfolio")]
        indexes = [models.Index(fields=["status", "portfolio_id", "seq"])]

    def __str__(self) -> str:
        return f"portfolio {self.portfolio_id} #{self.seq} {self.kind}"

    @property
    def data(self) -> leader_events.LeaderEventData:
        """The typed payload (raises EventPayloadError on a malformed one)."""
        return leader_events.parse(self.kind, self.payload)


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"


class PropagationChunk(models.Model):
    """A checkpoint: one slice of an event's subscriptions (by id range)."""

    event = models.ForeignKey(LeaderEvent, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_subscription_id = models.BigIntegerField()
    last_subscription_id = models.BigIntegerField()
    status = models.CharField(max_length=8, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    # Execution rows the chunk wrote, by outcome (added up per event for the
    # leader's event history: a sum over a few chunks, not a count over every
    # follower's row). Incremented in the chunk's own transaction.
    copied = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "index"], name="one_chunk_per_index")]
        indexes = [models.Index(fields=["status", "updated_at"])]

    def __str__(self) -> str:
        return f"event {self.event_id} chunk {self.index} ({self.status})"


class Outcome(models.TextChoices):
    COPIED = "COPIED", "Copied"
    SKIPPED = "SKIPPED", "Skipped"
    REJECTED = "REJECTED", "Rejected"
    FAILED = "FAILED", "Failed"


class Execution(models.Model):
    """One row per leader event per subscription: what happened and why."""

    # Covered by the (event, subscription_id) unique index.
    event = models.ForeignKey(LeaderEvent, on_delete=models.PROTECT, related_name="executions", db_index=False)
    subscription_id = models.BigIntegerField()
    portfolio_id = models.BigIntegerField(db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason_code = models.CharField(max_length=50, blank=True)
    # The leader's quantity the row was copied from: opened, bought, reduced,
    # closed or sold (or of the leader's limit order).
    leader_quantity = models.DecimalField(**MONEY, null=True, blank=True)
    # Reduces, closes and sells: the leader's quantity ÷ what it held before,
    # rounded to money.FRACTION_PLACES places for display (the follower's size
    # was computed from the exact quantities).
    leader_fraction = models.DecimalField(
        max_digits=FRACTION_PLACES + 4, decimal_places=FRACTION_PLACES, null=True, blank=True
    )
    leader_price = models.DecimalField(**MONEY, null=True, blank=True)
    follower_quantity = models.DecimalField(**MONEY, null=True, blank=True)
    follower_price = models.DecimalField(**MONEY, null=True, blank=True)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="executions", db_index=False
    )
    # What the decision saw (the "why" a follower did or did not copy): the
    # size before step rounding, the copy's free balance, the instrument's
    # minimums and step, the price the size was computed at; and a detail
    # beside the reason code (e.g. the kill switch's reason).
    attempted_quantity = models.DecimalField(**MONEY, null=True, blank=True)
    free_balance = models.DecimalField(**MONEY, null=True, blank=True)
    min_quantity = models.DecimalField(**MONEY, null=True, blank=True)
    min_notional = models.DecimalField(**MONEY, null=True, blank=True)
    quantity_step = models.DecimalField(**MONEY, null=True, blank=True)
    price_used = models.DecimalField(**MONEY, null=True, blank=True)
    reason_detail = models.CharField(max_length=300, blank=True, db_default="")
    # The leader event's created_at, never the time of writing: the partition
    # key on PostgreSQL (copytrading/partitions.py), so it must be a function
    # of the row's identity for the unique index below (which must include
    # it) to refuse a retry that straddles a month boundary. No default: a
    # writer that forgets it fails instead of writing a second row.
    created_at = models.DateTimeField()
    # When the row was written (the writing statement's start, a database
    # default, so the bulk COPY fills it without naming it): what the live
    # stream's late-commit window reads, as created_at is the event's time
    # and can be long past when a chunk runs late. Rows older than the column
    # read 1970-01-01 (unknown). Not exposed; no index.
    recorded_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event", "subscription_id", "created_at"], name="one_execution_per_event_and_subscription"
            )
        ]
        indexes = [models.Index(fields=["subscription_id", "-id"])]

    def __str__(self) -> str:
        return f"{self.outcome} {self.reason_code} event={self.event_id} sub={self.subscription_id}"


class InboxStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    EXECUTED = "executed", "Executed"
    REJECTED = "rejected", "Rejected"


class InboxMessage(models.Model):
    """A message from an external source (signal webhook, exchange watcher),
    claimed once by its (source, portfolio, external id) for the dedup window.

    The portfolio is part of the key because external ids are chosen by each
    leader's tooling: two leaders both sending id "1" must not collide."""

    source = models.CharField(max_length=32)
    external_id = models.CharField(max_length=200)
    portfolio_id = models.BigIntegerField()
    received_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=8, choices=InboxStatus.choices, default=InboxStatus.RECEIVED)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "portfolio_id", "external_id"], name="one_inbox_message_per_external_id"
            )
        ]
        # The hourly cleanup deletes by age.
        indexes = [models.Index(fields=["received_at"])]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id} portfolio={self.portfolio_id} ({self.status})"


class IdempotentRequest(models.Model):
    """The first answer to a money-moving POST sent with an ``Idempotency-Key``
    (copytrading/idempotency.py). Written in the same transaction as the
    change it answers, so a crash commits both or neither."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # 100: the keys also name ledger transfers (deposit, fund), whose key column is 200.
    key = models.CharField(max_length=100)
    # sha256 of method, path and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_idempotent_request_per_user_key")]
        # The hourly cleanup deletes by age.
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} -> {self.status_code}"


class StreamNotice(models.Model):
    """Embedded mode only: a notice for the live stream's hub in the web
    process (copytrading.stream.publish), which polls this table; services
    mode sends notices through the channel layer instead. Purged after
    minutes."""

    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"notice {self.pk}"
