"""What one follower gets for one leader event. Pure: no Django.

The propagation engine loads everything a chunk needs, calls ``decide`` for
every follower, then writes the results set-based.
"""

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

# Reason codes (stable: they are shown to staff and followers).
SUBSCRIPTION_PAUSED = "SUBSCRIPTION_PAUSED"
PRODUCT_NOT_COPIED = "PRODUCT_NOT_COPIED"
NO_MIRROR_POSITION = "NO_MIRROR_POSITION"
INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
NO_HOLDING_TO_SELL = "NO_HOLDING_TO_SELL"
SPOT_PAIR_QUOTE_MISMATCH = "SPOT_PAIR_QUOTE_MISMATCH"


@dataclass(frozen=True)
class EventView:
    kind: str
    order_side: str
    price: Decimal  # the leader's fill price
    quantity: Decimal = ZERO  # the leader's quantity for opens/increases/buys
    fraction: Decimal = ZERO  # the share of the position/holding closed or sold
    leverage: int = 1
    leader_equity: Decimal = ZERO


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


@dataclass(frozen=True)
class MirrorView:
    side: str
    quantity: Decimal
    leverage: int


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


def _skip(reason: str) -> Decision:
    return Decision(SKIPPED, reason)


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
) -> Decision:
    price = market.fill_price_buy if event.order_side == trade_math.BUY else market.fill_price_sell

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
        if trade_math.margin_for(quantity, price, leverage) > free:
            return Decision(REJECTED, INSUFFICIENT_MARGIN, quantity=quantity, price=price, leverage=leverage)
        return Decision(COPIED, "", action, event.order_side, quantity, price, leverage)

    if event.kind in (POSITION_REDUCE, POSITION_CLOSE):
        if mirror is None:
            return _skip(NO_MIRROR_POSITION)
        if event.kind == POSITION_CLOSE:
            return Decision(COPIED, "", trade_math.CLOSE, event.order_side, mirror.quantity, price, mirror.leverage)
        quantity = floor_to_step(mirror.quantity * event.fraction, market.constraints.qty_step)
        if quantity <= 0:
            return _skip(sizing.BELOW_MIN_QUANTITY)
        if mirror.quantity - quantity < market.constraints.min_qty:
            # What would remain is below what the venue keeps open: close it all.
            return Decision(COPIED, "", trade_math.CLOSE, event.order_side, mirror.quantity, price, mirror.leverage)
        return Decision(COPIED, "", trade_math.REDUCE, event.order_side, quantity, price, mirror.leverage)

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
