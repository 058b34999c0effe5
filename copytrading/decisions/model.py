"""The vocabulary of decisions: outcomes, event kinds, actions, order
statuses, reason codes, and the frozen views ``decide`` reads and the
``Decision`` it returns. Pure: no Django."""

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Context, Decimal
from functools import cached_property

from copytrading import leader_events, sizing
from copytrading.leader_events import Kind
from copytrading.money import ZERO

COPIED, SKIPPED, REJECTED, FAILED = "COPIED", "SKIPPED", "REJECTED", "FAILED"

# Event kinds, as plain strings (declared once, in copytrading.leader_events).
POSITION_OPEN = Kind.POSITION_OPEN.value
POSITION_REDUCE = Kind.POSITION_REDUCE.value
POSITION_CLOSE = Kind.POSITION_CLOSE.value
SPOT_BUY = Kind.SPOT_BUY.value
SPOT_SELL = Kind.SPOT_SELL.value
LIMIT_PLACED = Kind.LIMIT_PLACED.value
LIMIT_REPRICED = Kind.LIMIT_REPRICED.value
LIMIT_CANCELLED = Kind.LIMIT_CANCELLED.value
TPSL_SET = Kind.TPSL_SET.value
POSITION_EDIT = Kind.POSITION_EDIT.value
ORDER_NOT_COPIED = Kind.ORDER_NOT_COPIED.value
POSITION_KINDS = leader_events.POSITION_KINDS
LIMIT_KINDS = leader_events.LIMIT_KINDS

SPOT_PRODUCT = "spot"  # MarketView.product of a spot instrument (copytrading.models.Product.SPOT)

# Actions on a mirror order or position that are not fills (the fill actions
# are trade_math's open/increase/reduce/close and spot_buy/spot_sell).
LIMIT_PLACE, LIMIT_REPRICE, LIMIT_CANCEL, TPSL = "limit_place", "limit_reprice", "limit_cancel", "tpsl"

# Order statuses (the values of copytrading.models.OrderStatus).
ORDER_OPEN, ORDER_FILLED, ORDER_CANCELLED, ORDER_REJECTED = "open", "filled", "cancelled", "rejected"

# Reason codes (stable: they are shown to staff and followers).
SUBSCRIPTION_PAUSED = "SUBSCRIPTION_PAUSED"
PRODUCT_NOT_COPIED = "PRODUCT_NOT_COPIED"
NO_MIRROR_POSITION = "NO_MIRROR_POSITION"
INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
NO_HOLDING_TO_SELL = "NO_HOLDING_TO_SELL"
SPOT_PAIR_QUOTE_MISMATCH = "SPOT_PAIR_QUOTE_MISMATCH"
NO_MIRROR_ORDER = "NO_MIRROR_ORDER"
MIRROR_LIMIT_FILLED = "MIRROR_LIMIT_FILLED"
POSITION_EDIT_NOT_PROPAGATED = "POSITION_EDIT_NOT_PROPAGATED"
SLIPPAGE_EXCEEDED = "SLIPPAGE_EXCEEDED"
ADVANCED_ORDER_NOT_SUPPORTED = "ADVANCED_ORDER_NOT_SUPPORTED"
STOP_ORDER_NOT_SUPPORTED_FOR_COPY = "STOP_ORDER_NOT_SUPPORTED_FOR_COPY"
NOT_COPIED_REASONS = (ADVANCED_ORDER_NOT_SUPPORTED, STOP_ORDER_NOT_SUPPORTED_FOR_COPY)
# A copy bound to an exchange account gets no mirror limit order (it copies
# the leader's limit when it fills, as a market order).
MIRROR_LIMIT_NOT_ON_EXCHANGE = "MIRROR_LIMIT_NOT_ON_EXCHANGE"
PAPER_VENUE = "paper"  # TargetView.venue of a copy on the paper venue
# Staff halted copying (globally or of the event's portfolio: the live
# settings' kill switch, copytrading/live); the execution row's
# reason_detail is their reason. Only what a paused follower would not get
# is halted (docs/decisions.md §72).
COPYING_HALTED = "COPYING_HALTED"
# The FAILED outcome's code: the follower's decision or write raised (a bug or
# a row no code expected); the propagation isolated it and served the others.
INTERNAL_ERROR = "INTERNAL_ERROR"

DEFAULT_SLIPPAGE_TOLERANCE_PCT = Decimal("1.00")

# The risk app's pre-trade limits, loaded per chunk by the target source:
# ``check(subscription_id, *, opens_position, notional)`` returns None to go
# ahead, or the reason code (e.g. RISK_MAX_OPEN_POSITIONS) to reject with.
PreTradeCheck = Callable[..., str | None]


# Enough digits that a product of two quantities (28 significant digits
# each at most) is exact, and so is the integer part of its quotient. Its
# methods are called directly: no context switch per follower.
_EXACT = Context(prec=60)


@dataclass(frozen=True)
class Share:
    """The part of its position or holding the leader reduced, closed or sold.

    ``quantity`` of ``before``, both exact. Events recorded before those were
    carried have ``before`` = 0 and only ``fraction``, the quotient rounded to
    28 digits: they are still sized from it."""

    quantity: Decimal
    before: Decimal
    fraction: Decimal = ZERO

    @cached_property
    def is_all(self) -> bool:
        """The leader left nothing: every follower closes or sells all of it."""
        if self.before > 0:
            return self.quantity >= self.before
        return self.fraction >= 1

    def of(self, held: Decimal, step: Decimal) -> Decimal:
        """held x quantity ÷ before, rounded down to the step. Multiplied
        first and divided once, exactly: a follower holding what the leader
        held gets the leader's quantity, to the last step (a rounded quotient
        first, 0.78 ÷ 3.13 = 0.24920…, made 3.13 x 0.24920… = 0.77999… and
        floored it to 0.77)."""
        part, whole = (self.quantity, self.before) if self.before > 0 else (self.fraction, Decimal(1))
        if held <= 0 or part <= 0:
            return ZERO
        steps = _EXACT.divide_int(_EXACT.multiply(held, part), _EXACT.multiply(whole, step))
        return _EXACT.multiply(steps, step)

    def exact(self, held: Decimal) -> Decimal:
        """held x quantity ÷ before before any rounding to the step (what the
        execution row records as the attempted quantity), to 28 digits."""
        part, whole = (self.quantity, self.before) if self.before > 0 else (self.fraction, Decimal(1))
        if held <= 0 or part <= 0:
            return ZERO
        return held * part / whole


@dataclass(frozen=True)
class EventView:
    kind: str
    order_side: str
    price: Decimal  # the leader's fill price (the limit price for limit events)
    # The leader's quantity: opened, bought, closed, reduced or sold, or of
    # its limit order.
    quantity: Decimal = ZERO
    # Reduces, closes and sells (and spot limit sells): the leader's position
    # or holding before, so a follower's share is sized exactly as
    # held x quantity ÷ quantity_before (Share, above). Zero in events
    # recorded before it existed: those are sized by ``fraction``, the share
    # as a quotient rounded to 28 digits.
    quantity_before: Decimal = ZERO
    fraction: Decimal = ZERO
    leverage: int = 1
    leader_equity: Decimal = ZERO
    # A fill of the leader's limit order: which order, its whole quantity (a
    # flip splits it into a close and an open event) and whether this event is
    # the order's last step.
    limit_order_id: int | None = None
    order_quantity: Decimal = ZERO
    limit_final: bool = False
    # An order_not_copied event: why the leader's order is not copied.
    reason_code: str = ""

    @cached_property
    def share(self) -> Share:
        """What a reduce, close or sell takes of every follower's mirror or
        holding (built once per event, not per follower)."""
        return Share(self.quantity, self.quantity_before, self.fraction)


def event_view(data: leader_events.LeaderEventData) -> EventView:
    """What ``decide`` reads of a typed leader event (built once per chunk)."""
    le = leader_events
    kind = data.KIND.value
    if isinstance(data, le.PositionOpen | le.SpotBuy):
        return EventView(
            kind, data.order_side, data.price, data.quantity,
            leverage=data.leverage if isinstance(data, le.PositionOpen) else 1,
            leader_equity=data.leader_equity,
            limit_order_id=data.limit_order_id,
            order_quantity=data.order_quantity or ZERO,
            limit_final=bool(data.limit_final),
        )  # fmt: skip
    if isinstance(data, le.PositionReduce | le.PositionClose | le.SpotSell):
        return EventView(
            kind, data.order_side, data.price, data.quantity or ZERO,
            quantity_before=data.quantity_before or ZERO,
            fraction=data.fraction or ZERO,
            limit_order_id=data.limit_order_id,
            order_quantity=data.order_quantity or ZERO,
            limit_final=bool(data.limit_final),
        )  # fmt: skip
    if isinstance(data, le.LimitPlaced):
        return EventView(
            kind, data.order_side, data.price, data.quantity,
            quantity_before=data.quantity_before or ZERO,
            fraction=data.fraction or ZERO,
            leverage=data.leverage,
            leader_equity=data.leader_equity,
        )  # fmt: skip
    if isinstance(data, le.LimitRepriced | le.LimitCancelled):
        return EventView(kind, data.order_side, data.price, data.quantity, leverage=data.leverage or 1)
    if isinstance(data, le.PositionEdit):
        return EventView(kind, "", ZERO, leverage=data.leverage)
    if isinstance(data, le.OrderNotCopied):
        return EventView(kind, data.order_side, data.price or ZERO, data.quantity, reason_code=data.reason_code)
    if isinstance(data, le.TpslSet):
        return EventView(kind, "", ZERO)
    raise TypeError(f"no view for {type(data).__name__}")


@dataclass(frozen=True)
class TargetView:
    subscription_id: int
    account_id: int
    active: bool
    sizing_model: str
    multiplier: Decimal | None = None
    fixed_notional: Decimal | None = None
    risk_factor: Decimal | None = None
    leverage_override: int | None = None
    copy_margin: bool = True
    copy_spot: bool = True
    slippage_tolerance_pct: Decimal = DEFAULT_SLIPPAGE_TOLERANCE_PCT
    # Where this follower's copies execute (copytrading.venues; the target
    # source sets it per subscription).
    venue: str = "paper"


@dataclass(frozen=True)
class MirrorView:
    side: str
    quantity: Decimal
    leverage: int


@dataclass(frozen=True)
class MirrorOrderView:
    """The follower's mirror of the leader's limit order."""

    status: str
    quantity: Decimal
    price: Decimal
    leverage: int
    reserved: Decimal


@dataclass(frozen=True)
class MarketView:
    product: str
    quote: str
    primary_currency: str
    fill_price_buy: Decimal
    fill_price_sell: Decimal
    max_leverage: int
    constraints: sizing.Constraints


@dataclass(frozen=True)
class Decision:
    outcome: str
    reason: str = ""
    action: str | None = None  # open / increase / reduce / close / spot_buy / spot_sell
    order_side: str = ""
    quantity: Decimal = ZERO
    price: Decimal | None = None
    leverage: int = 1
    reserved: Decimal = ZERO  # the margin a placed or re-priced mirror limit holds
    order_status: str | None = None  # the mirror limit's new status when it stops resting
    # What the decision saw, for the execution row (the "why"; not part of
    # the decision itself, so not compared): ``(attempted, free, price_used)``,
    # read through the properties below; empty where the decision never got
    # that far (a paused copy, no mirror). One tuple, not three fields: a
    # field costs every Decision (10,000 per event) its own set in __init__.
    seen: tuple = field(default=(), compare=False)

    @property
    def attempted(self) -> Decimal | None:
        """The size before step rounding (a reduce's or sell's exact share).
        The writer adds the instrument's minimums to a row that has one."""
        return self.seen[0] if self.seen else None

    @property
    def free(self) -> Decimal | None:
        """The copy wallet's free balance, when the decision weighed it."""
        return self.seen[1] if self.seen else None

    @property
    def price_used(self) -> Decimal | None:
        """The price the size was computed at."""
        return self.seen[2] if self.seen else None

    @property
    def detail(self) -> str:
        """A note beside the reason code (``Execution.reason_detail``: e.g. the
        kill switch's reason), carried as a fourth element by ``skip``."""
        return self.seen[3] if len(self.seen) > 3 else ""


def skip(reason: str, detail: str = "") -> Decision:
    """Not copied for ``reason``; ``detail`` (e.g. the platform's reason for a
    halt) goes beside the code on the execution row."""
    return Decision(SKIPPED, reason, seen=(None, None, None, detail)) if detail else Decision(SKIPPED, reason)
