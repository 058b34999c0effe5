"""Copying the leader's spot buys and sells, market and limit. Pure.

A follower's sell is the leader's share of its whole holding (holding x
leader's sell ÷ leader's holding before, ``model.Share``), capped at the
part no resting sell of its own holds (``free``)."""

from decimal import Decimal

from copytrading import sizing, trade_math
from copytrading.decisions.model import (
    COPIED,
    INSUFFICIENT_FUNDS,
    LIMIT_CANCEL,
    LIMIT_CANCELLED,
    LIMIT_PLACE,
    LIMIT_PLACED,
    LIMIT_REPRICE,
    NO_HOLDING_TO_SELL,
    NO_MIRROR_ORDER,
    ORDER_CANCELLED,
    ORDER_FILLED,
    ORDER_OPEN,
    PRODUCT_NOT_COPIED,
    REJECTED,
    SKIPPED,
    SLIPPAGE_EXCEEDED,
    SPOT_BUY,
    SPOT_PAIR_QUOTE_MISMATCH,
    SUBSCRIPTION_PAUSED,
    Decision,
    EventView,
    MarketView,
    MirrorOrderView,
    PreTradeCheck,
    Share,
    TargetView,
    skip,
)
from copytrading.decisions.rules import size, slippage_exceeded
from copytrading.money import ZERO, q8_up


def spot_limit_reserve(quantity: Decimal, price: Decimal, side: str) -> Decimal:
    """What a spot limit holds: a buy its cost in the quote, a sell its quantity."""
    return q8_up(quantity * price) if side == trade_math.BUY else quantity


def _buy_size(event: EventView, target: TargetView, price: Decimal, equity: Decimal, market: MarketView):
    """(quantity, reason, attempted): the follower's buy, or why it gets
    none; and its size before the constraints (None if never sized)."""
    if not target.active:
        return ZERO, SUBSCRIPTION_PAUSED, None
    if not target.copy_spot:
        return ZERO, PRODUCT_NOT_COPIED, None
    return size(event, target, price, equity, market)


def _pretrade(
    pretrade: PreTradeCheck | None,
    target: TargetView,
    quantity: Decimal,
    price: Decimal,
    holding: Decimal,
    market: MarketView,
) -> str | None:
    """The pre-trade limits, as for a margin copy: a buy of an asset not yet
    held (or held as dust, below the minimum quantity) opens a position, one
    of an asset held adds to it; the notional counts toward the exposure."""
    if pretrade is None:
        return None
    opens = holding < market.constraints.min_qty
    return pretrade(target.subscription_id, opens_position=opens, notional=quantity * price)


def _sell_size(share: Share, holding: Decimal, reserved: Decimal, market: MarketView):
    """(quantity, reason, attempted): the leader's share of the holding,
    within its free part; and that share before rounding (None for all of it)."""
    free = holding - reserved
    if holding <= 0:
        return ZERO, NO_HOLDING_TO_SELL, None
    attempted = None if share.is_all else share.exact(holding)
    quantity = free if share.is_all else min(free, share.of(holding, market.constraints.qty_step))
    if quantity <= 0:
        return ZERO, sizing.BELOW_MIN_QUANTITY, attempted
    return quantity, "", attempted


def spot_trade(
    event: EventView,
    target: TargetView,
    *,
    price: Decimal,
    free: Decimal,
    equity: Decimal,
    holding: Decimal,
    market: MarketView,
    holding_reserved: Decimal = ZERO,
    pretrade: PreTradeCheck | None = None,
) -> Decision:
    """Buy a sized amount, or sell the leader's share of the holding."""
    if market.quote != market.primary_currency:
        return skip(SPOT_PAIR_QUOTE_MISMATCH)
    if event.kind == SPOT_BUY:
        quantity, reason, raw = _buy_size(event, target, price, equity, market)
        if raw is None:  # paused, or not copying spot: nothing was weighed
            return skip(reason)
        if reason:
            return Decision(SKIPPED, reason, seen=(raw, free, price))
        refused = _pretrade(pretrade, target, quantity, price, holding, market)
        if refused:
            return Decision(REJECTED, refused, quantity=quantity, price=price, seen=(raw, free, price))
        if q8_up(quantity * price) > free:
            return Decision(REJECTED, INSUFFICIENT_FUNDS, quantity=quantity, price=price, seen=(raw, free, price))
        if slippage_exceeded(event.price, price, target.slippage_tolerance_pct):
            return Decision(REJECTED, SLIPPAGE_EXCEEDED, quantity=quantity, price=price, seen=(raw, free, price))
        return Decision(COPIED, "", "spot_buy", event.order_side, quantity, price, seen=(raw, free, price))
    quantity, reason, attempted = _sell_size(event.share, holding, holding_reserved, market)
    if reason == NO_HOLDING_TO_SELL:
        return skip(reason)
    if reason:
        return Decision(SKIPPED, reason, seen=(attempted, None, price))
    return Decision(COPIED, "", "spot_sell", event.order_side, quantity, price, seen=(attempted, None, price))


def spot_limit_event(
    event: EventView,
    target: TargetView,
    *,
    free: Decimal,
    equity: Decimal,
    holding: Decimal,
    holding_reserved: Decimal,
    order: MirrorOrderView | None,
    market: MarketView,
    pretrade: PreTradeCheck | None = None,
) -> Decision:
    """Place, re-price or cancel the follower's mirror of a leader's spot
    limit. A buy is sized like a market buy at the limit price and reserves
    its cost (the pre-trade limits are checked when it is placed); a sell
    rests the leader's share of the holding and reserves that quantity.
    Sells reach paused followers, as market sells do."""
    buy = event.order_side == trade_math.BUY
    if event.kind == LIMIT_PLACED:
        if market.quote != market.primary_currency:
            return skip(SPOT_PAIR_QUOTE_MISMATCH)
        price = event.price
        if buy:
            quantity, reason, attempted = _buy_size(event, target, price, equity, market)
        else:
            quantity, reason, attempted = _sell_size(event.share, holding, holding_reserved, market)
        # A buy weighs the wallet's free balance; a sell only the holding.
        seen_free = free if buy else None
        if reason in (SUBSCRIPTION_PAUSED, PRODUCT_NOT_COPIED, NO_HOLDING_TO_SELL):
            return skip(reason)
        if reason:
            return Decision(SKIPPED, reason, seen=(attempted, seen_free, price))
        refused = buy and _pretrade(pretrade, target, quantity, price, holding, market)
        if refused:
            return Decision(REJECTED, refused, quantity=quantity, price=price, seen=(attempted, seen_free, price))
        reserved = spot_limit_reserve(quantity, price, event.order_side)
        if buy and reserved > free:
            return Decision(
                REJECTED, INSUFFICIENT_FUNDS, quantity=quantity, price=price,
                seen=(attempted, seen_free, price),
            )  # fmt: skip
        return Decision(
            COPIED, "", LIMIT_PLACE, event.order_side, quantity, price, 1, reserved, ORDER_OPEN,
            seen=(attempted, seen_free, price),
        )  # fmt: skip

    if order is None or order.status != ORDER_OPEN:
        return skip(NO_MIRROR_ORDER)
    if event.kind == LIMIT_CANCELLED:
        return Decision(
            COPIED, "", LIMIT_CANCEL, event.order_side, order.quantity, order.price, 1, order_status=ORDER_CANCELLED
        )
    reserved = spot_limit_reserve(order.quantity, event.price, event.order_side)
    seen_free = free if buy else None
    if reserved - order.reserved > free:  # only a buy's reservation can grow
        return Decision(
            REJECTED, INSUFFICIENT_FUNDS, LIMIT_CANCEL, event.order_side, order.quantity, event.price, 1,
            order_status=ORDER_CANCELLED, seen=(None, seen_free, event.price),
        )  # fmt: skip
    return Decision(
        COPIED, "", LIMIT_REPRICE, event.order_side, order.quantity, event.price, 1, reserved,
        seen=(None, seen_free, event.price),
    )  # fmt: skip


def mirror_spot_limit_fill(event: EventView, *, holding: Decimal, order: MirrorOrderView) -> Decision:
    """The leader's spot limit filled while the follower's mirror still rests:
    the mirror fills now, whole, at its own price. Its reservation pays for
    it: a buy's cost was reserved, a sell's quantity is held in the holding."""
    if event.order_side == trade_math.SELL and holding < order.quantity:  # the holding constraint forbids it
        return Decision(SKIPPED, NO_HOLDING_TO_SELL, order_status=ORDER_CANCELLED)
    action = "spot_buy" if event.order_side == trade_math.BUY else "spot_sell"
    return Decision(
        COPIED, "", action, event.order_side, order.quantity, order.price, 1, order_status=ORDER_FILLED,
        seen=(None, None, order.price),
    )  # fmt: skip
