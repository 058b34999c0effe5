"""What one follower gets for one leader event. Pure: no Django.

The propagation engine loads everything a chunk needs, calls ``decide`` for
every follower, then writes the results set-based.
"""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from copytrading import sizing, trade_math
from copytrading.money import ZERO, floor_to_step, q8_up

COPIED, SKIPPED, REJECTED, FAILED = "COPIED", "SKIPPED", "REJECTED", "FAILED"

# Event kinds (the values of copytrading.models.LeaderEventKind).
POSITION_OPEN = "position_open"
POSITION_REDUCE = "position_reduce"
POSITION_CLOSE = "position_close"
SPOT_BUY = "spot_buy"
SPOT_SELL = "spot_sell"
LIMIT_PLACED = "limit_placed"
LIMIT_REPRICED = "limit_repriced"
LIMIT_CANCELLED = "limit_cancelled"
TPSL_SET = "tpsl_set"
POSITION_EDIT = "position_edit"
POSITION_KINDS = (POSITION_OPEN, POSITION_REDUCE, POSITION_CLOSE)
LIMIT_KINDS = (LIMIT_PLACED, LIMIT_REPRICED, LIMIT_CANCELLED)

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

DEFAULT_SLIPPAGE_TOLERANCE_PCT = Decimal("1.00")

# The risk app's pre-trade limits, loaded per chunk by the target source:
# ``check(subscription_id, *, opens_position, notional)`` returns None to go
# ahead, or the reason code (e.g. RISK_MAX_OPEN_POSITIONS) to reject with.
PreTradeCheck = Callable[..., str | None]


@dataclass(frozen=True)
class EventView:
    kind: str
    order_side: str
    price: Decimal  # the leader's fill price (the limit price for limit events)
    quantity: Decimal = ZERO  # the leader's quantity for opens/increases/buys and limit orders
    fraction: Decimal = ZERO  # the share of the position/holding closed or sold
    leverage: int = 1
    leader_equity: Decimal = ZERO
    # A fill of the leader's limit order: which order, its whole quantity (a
    # flip splits it into a close and an open event) and whether this event is
    # the order's last step.
    limit_order_id: int | None = None
    order_quantity: Decimal = ZERO
    limit_final: bool = False


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


def _skip(reason: str) -> Decision:
    return Decision(SKIPPED, reason)


def slippage_exceeded(leader_price: Decimal, follower_price: Decimal, tolerance_pct: Decimal) -> bool:
    """True if the follower's price is more than ``tolerance_pct`` percent
    away from the leader's (exactly at the tolerance is still accepted)."""
    if leader_price <= 0:
        return False
    return abs(follower_price - leader_price) * 100 > tolerance_pct * leader_price


def _reduce(mirror_quantity: Decimal, fraction: Decimal, c: sizing.Constraints) -> tuple[str, Decimal] | None:
    """The same fraction of the mirror, or all of it if the rest would be
    below what the venue keeps open; None if the fraction rounds to nothing."""
    quantity = floor_to_step(mirror_quantity * fraction, c.qty_step)
    if quantity <= 0:
        return None
    if quantity >= mirror_quantity or mirror_quantity - quantity < c.min_qty:
        return trade_math.CLOSE, mirror_quantity
    return trade_math.REDUCE, quantity


@dataclass(frozen=True)
class LeaderStep:
    """One step of a leader's fill, as its event describes it."""

    kind: str  # POSITION_OPEN (open or increase), POSITION_REDUCE or POSITION_CLOSE
    quantity: Decimal = ZERO  # opened quantity
    fraction: Decimal = ZERO  # share of the position reduced


@dataclass(frozen=True)
class MirrorStep:
    action: str
    quantity: Decimal


def mirror_limit_steps(
    steps: list[LeaderStep],
    *,
    order_quantity: Decimal,
    mirror_order_quantity: Decimal,
    mirror_quantity: Decimal | None,
    price: Decimal,
    constraints: sizing.Constraints,
) -> tuple[list[MirrorStep], str]:
    """What a follower's mirror limit does when the leader's limit order fills
    in ``steps``: the mirror follows each step the way a copied market order
    would (close → close, reduce → the same fraction, open → the mirror
    order's size, scaled to the opened part of a flip), so it never ends up
    on another side than the leader. Returns the steps and, if a step could
    not be mirrored, the reason."""
    out: list[MirrorStep] = []
    held = mirror_quantity or ZERO
    reason = ""
    for step in steps:
        if step.kind == POSITION_CLOSE:
            if held > 0:
                out.append(MirrorStep(trade_math.CLOSE, held))
                held = ZERO
            else:
                reason = NO_MIRROR_POSITION
        elif step.kind == POSITION_REDUCE:
            planned = _reduce(held, step.fraction, constraints) if held > 0 else None
            if planned is None:
                reason = NO_MIRROR_POSITION if held <= 0 else sizing.BELOW_MIN_QUANTITY
                continue
            out.append(MirrorStep(*planned))
            held -= planned[1]
        else:
            raw = mirror_order_quantity * step.quantity / order_quantity if order_quantity > 0 else ZERO
            quantity, why = sizing.constrain(raw, price, constraints)
            if why:
                reason = why
                continue
            out.append(MirrorStep(trade_math.INCREASE if held > 0 else trade_math.OPEN, quantity))
            held += quantity
    return out, reason


def _size(event: EventView, target: TargetView, price: Decimal, equity: Decimal, market: MarketView):
    raw = sizing.follower_quantity(
        model=target.sizing_model,
        leader_quantity=event.quantity,
        price=price,
        multiplier=target.multiplier,
        fixed_notional=target.fixed_notional,
        risk_factor=target.risk_factor,
        follower_equity=equity,
        leader_equity=event.leader_equity,
    )
    return sizing.constrain(raw, price, market.constraints)


def decide(
    event: EventView,
    target: TargetView,
    *,
    free: Decimal,
    equity: Decimal,
    mirror: MirrorView | None,
    holding: Decimal,
    market: MarketView,
    mirror_order: MirrorOrderView | None = None,
    pretrade: PreTradeCheck | None = None,
) -> Decision:
    price = market.fill_price_buy if event.order_side == trade_math.BUY else market.fill_price_sell

    if event.kind in POSITION_KINDS and event.limit_order_id is not None and mirror_order is not None:
        # A fill of the leader's limit order. A follower whose mirror limit
        # already filled (the venue matched it with the leader's) must not get
        # the position a second time; one whose mirror still rests (it was
        # placed or re-priced after the market moved) fills it now, at its
        # limit price. Without a live mirror limit the event copies like a
        # market order, below.
        if mirror_order.status == ORDER_FILLED:
            return _skip(MIRROR_LIMIT_FILLED)
        if mirror_order.status == ORDER_OPEN:
            return _mirror_limit_fill(event, free=free, mirror=mirror, order=mirror_order, market=market)

    if event.kind == POSITION_OPEN:
        if not target.active:
            return _skip(SUBSCRIPTION_PAUSED)
        if not target.copy_margin:
            return _skip(PRODUCT_NOT_COPIED)
        if mirror is not None:
            action, leverage = trade_math.INCREASE, mirror.leverage
        else:
            action = trade_math.OPEN
            leverage = min(target.leverage_override or event.leverage, market.max_leverage)
        quantity, reason = _size(event, target, price, equity, market)
        if reason:
            return _skip(reason)
        refused = pretrade and pretrade(
            target.subscription_id, opens_position=mirror is None, notional=quantity * price
        )
        if refused:
            return Decision(REJECTED, refused, quantity=quantity, price=price, leverage=leverage)
        if trade_math.margin_for(quantity, price, leverage) > free:
            return Decision(REJECTED, INSUFFICIENT_MARGIN, quantity=quantity, price=price, leverage=leverage)
        if slippage_exceeded(event.price, price, target.slippage_tolerance_pct):
            return Decision(REJECTED, SLIPPAGE_EXCEEDED, quantity=quantity, price=price, leverage=leverage)
        return Decision(COPIED, "", action, event.order_side, quantity, price, leverage)

    if event.kind in (POSITION_REDUCE, POSITION_CLOSE):
        # Closing copies ignore the slippage tolerance: it protects entries,
        # and must never keep a follower in a position the leader has left.
        if mirror is None:
            return _skip(NO_MIRROR_POSITION)
        if event.kind == POSITION_CLOSE:
            return Decision(COPIED, "", trade_math.CLOSE, event.order_side, mirror.quantity, price, mirror.leverage)
        planned = _reduce(mirror.quantity, event.fraction, market.constraints)
        if planned is None:
            return _skip(sizing.BELOW_MIN_QUANTITY)
        action, quantity = planned
        return Decision(COPIED, "", action, event.order_side, quantity, price, mirror.leverage)

    if event.kind in LIMIT_KINDS:
        return _decide_limit(
            event, target, free=free, equity=equity, order=mirror_order, market=market, pretrade=pretrade
        )

    if event.kind == TPSL_SET:
        if mirror is None:
            return _skip(NO_MIRROR_POSITION)
        return Decision(COPIED, "", TPSL, quantity=mirror.quantity, leverage=mirror.leverage)

    if event.kind == POSITION_EDIT:
        # A leverage/quantity edit changes the leader's own margin, not the
        # strategy: followers keep their own sizing and leverage.
        return _skip(POSITION_EDIT_NOT_PROPAGATED)

    if event.kind in (SPOT_BUY, SPOT_SELL):
        if market.quote != market.primary_currency:
            return _skip(SPOT_PAIR_QUOTE_MISMATCH)
        if event.kind == SPOT_BUY:
            if not target.active:
                return _skip(SUBSCRIPTION_PAUSED)
            if not target.copy_spot:
                return _skip(PRODUCT_NOT_COPIED)
            quantity, reason = _size(event, target, price, equity, market)
            if reason:
                return _skip(reason)
            if q8_up(quantity * price) > free:
                return Decision(REJECTED, INSUFFICIENT_FUNDS, quantity=quantity, price=price)
            if slippage_exceeded(event.price, price, target.slippage_tolerance_pct):
                return Decision(REJECTED, SLIPPAGE_EXCEEDED, quantity=quantity, price=price)
            return Decision(COPIED, "", "spot_buy", event.order_side, quantity, price)
        if holding <= 0:
            return _skip(NO_HOLDING_TO_SELL)
        quantity = (
            holding if event.fraction >= 1 else floor_to_step(holding * event.fraction, market.constraints.qty_step)
        )
        if quantity <= 0:
            return _skip(sizing.BELOW_MIN_QUANTITY)
        return Decision(COPIED, "", "spot_sell", event.order_side, quantity, price)

    raise ValueError(f"unknown event kind {event.kind!r}")


def _decide_limit(
    event: EventView,
    target: TargetView,
    *,
    free: Decimal,
    equity: Decimal,
    order: MirrorOrderView | None,
    market: MarketView,
    pretrade: PreTradeCheck | None = None,
) -> Decision:
    """Place, re-price or cancel the follower's mirror of a leader limit order.
    The mirror rests at the leader's price, so there is no slippage to check.
    The pre-trade limits are checked when it is placed, counting it as a new
    position (it may open one when it fills)."""
    if event.kind == LIMIT_PLACED:
        if not target.active:
            return _skip(SUBSCRIPTION_PAUSED)
        if not target.copy_margin:
            return _skip(PRODUCT_NOT_COPIED)
        leverage = min(target.leverage_override or event.leverage, market.max_leverage)
        quantity, reason = _size(event, target, event.price, equity, market)
        if reason:
            return _skip(reason)
        refused = pretrade and pretrade(target.subscription_id, opens_position=True, notional=quantity * event.price)
        if refused:
            return Decision(REJECTED, refused, quantity=quantity, price=event.price, leverage=leverage)
        reserved = trade_math.margin_for(quantity, event.price, leverage)
        if reserved > free:
            return Decision(REJECTED, INSUFFICIENT_MARGIN, quantity=quantity, price=event.price, leverage=leverage)
        return Decision(
            COPIED, "", LIMIT_PLACE, event.order_side, quantity, event.price, leverage, reserved, ORDER_OPEN
        )

    # Re-price and cancel reach paused followers too: a resting mirror keeps
    # following its leader order, like an open mirror follows closes.
    if order is None or order.status != ORDER_OPEN:
        return _skip(NO_MIRROR_ORDER)
    if event.kind == LIMIT_CANCELLED:
        return Decision(
            COPIED, "", LIMIT_CANCEL, event.order_side, order.quantity, order.price, order.leverage,
            order_status=ORDER_CANCELLED,
        )  # fmt: skip
    reserved = trade_math.margin_for(order.quantity, event.price, order.leverage)
    if reserved - order.reserved > free:
        # Left at the old price the mirror would fill where the leader no
        # longer buys: it is cancelled instead.
        return Decision(
            REJECTED, INSUFFICIENT_MARGIN, LIMIT_CANCEL, event.order_side, order.quantity, event.price,
            order.leverage, order_status=ORDER_CANCELLED,
        )  # fmt: skip
    return Decision(COPIED, "", LIMIT_REPRICE, event.order_side, order.quantity, event.price, order.leverage, reserved)


def _mirror_limit_fill(
    event: EventView,
    *,
    free: Decimal,
    mirror: MirrorView | None,
    order: MirrorOrderView,
    market: MarketView,
) -> Decision:
    """One step of the leader's limit fill applied to a still resting mirror
    limit, at the mirror's price. The last step ends the mirror order: filled
    if it traded, else cancelled (its reservation is released either way)."""
    steps, reason = mirror_limit_steps(
        [LeaderStep(event.kind, event.quantity, event.fraction)],
        order_quantity=event.order_quantity,
        mirror_order_quantity=order.quantity,
        mirror_quantity=mirror.quantity if mirror else None,
        price=order.price,
        constraints=market.constraints,
    )
    release = order.reserved if event.limit_final else ZERO
    if not steps:
        return Decision(SKIPPED, reason, order_status=ORDER_CANCELLED if event.limit_final else None)
    (step,) = steps
    leverage = mirror.leverage if mirror is not None else order.leverage
    opens = step.action in (trade_math.OPEN, trade_math.INCREASE)
    if opens and trade_math.margin_for(step.quantity, order.price, leverage) > free + release:
        return Decision(
            REJECTED, INSUFFICIENT_MARGIN, quantity=step.quantity, price=order.price, leverage=leverage,
            order_status=ORDER_REJECTED if event.limit_final else None,
        )  # fmt: skip
    return Decision(
        COPIED, "", step.action, event.order_side, step.quantity, order.price, leverage,
        order_status=ORDER_FILLED if event.limit_final else None,
    )  # fmt: skip
