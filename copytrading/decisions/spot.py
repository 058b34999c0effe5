"""Copying the leader's spot buys and sells. Pure."""

from decimal import Decimal

from copytrading import sizing
from copytrading.decisions.model import (
    COPIED,
    INSUFFICIENT_FUNDS,
    NO_HOLDING_TO_SELL,
    PRODUCT_NOT_COPIED,
    REJECTED,
    SLIPPAGE_EXCEEDED,
    SPOT_BUY,
    SPOT_PAIR_QUOTE_MISMATCH,
    SUBSCRIPTION_PAUSED,
    Decision,
    EventView,
    MarketView,
    TargetView,
    skip,
)
from copytrading.decisions.rules import size, slippage_exceeded
from copytrading.money import floor_to_step, q8_up


def spot_trade(
    event: EventView,
    target: TargetView,
    *,
    price: Decimal,
    free: Decimal,
    equity: Decimal,
    holding: Decimal,
    market: MarketView,
) -> Decision:
    """Buy a sized amount, or sell the leader's fraction of the holding."""
    if market.quote != market.primary_currency:
        return skip(SPOT_PAIR_QUOTE_MISMATCH)
    if event.kind == SPOT_BUY:
        if not target.active:
            return skip(SUBSCRIPTION_PAUSED)
        if not target.copy_spot:
            return skip(PRODUCT_NOT_COPIED)
        quantity, reason = size(event, target, price, equity, market)
        if reason:
            return skip(reason)
        if q8_up(quantity * price) > free:
            return Decision(REJECTED, INSUFFICIENT_FUNDS, quantity=quantity, price=price)
        if slippage_exceeded(event.price, price, target.slippage_tolerance_pct):
            return Decision(REJECTED, SLIPPAGE_EXCEEDED, quantity=quantity, price=price)
        return Decision(COPIED, "", "spot_buy", event.order_side, quantity, price)
    if holding <= 0:
        return skip(NO_HOLDING_TO_SELL)
    quantity = holding if event.fraction >= 1 else floor_to_step(holding * event.fraction, market.constraints.qty_step)
    if quantity <= 0:
        return skip(sizing.BELOW_MIN_QUANTITY)
    return Decision(COPIED, "", "spot_sell", event.order_side, quantity, price)
