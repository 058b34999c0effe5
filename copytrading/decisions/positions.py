"""Copying the leader's margin position events (market fills): open or
increase, reduce or close, TP/SL; and the edits that are not copied. Pure."""

from decimal import Decimal

from copytrading import sizing, trade_math
from copytrading.decisions.model import (
    COPIED,
    INSUFFICIENT_MARGIN,
    NO_MIRROR_POSITION,
    POSITION_CLOSE,
    PRODUCT_NOT_COPIED,
    REJECTED,
    SKIPPED,
    SLIPPAGE_EXCEEDED,
    SUBSCRIPTION_PAUSED,
    TPSL,
    Decision,
    EventView,
    MarketView,
    MirrorView,
    PreTradeCheck,
    TargetView,
    skip,
)
from copytrading.decisions.rules import reduce_by, size, slippage_exceeded


def position_open(
    event: EventView,
    target: TargetView,
    *,
    price: Decimal,
    free: Decimal,
    equity: Decimal,
    mirror: MirrorView | None,
    market: MarketView,
    pretrade: PreTradeCheck | None,
) -> Decision:
    """Open a mirror, or increase the one there is at its own leverage."""
    if not target.active:
        return skip(SUBSCRIPTION_PAUSED)
    if not target.copy_margin:
        return skip(PRODUCT_NOT_COPIED)
    if mirror is not None:
        action, leverage = trade_math.INCREASE, mirror.leverage
    else:
        action = trade_math.OPEN
        leverage = min(target.leverage_override or event.leverage, market.max_leverage)
    quantity, reason, raw = size(event, target, price, equity, market)
    # From here on the decision has seen the size, the wallet and the price:
    # every outcome records them (Decision.seen).
    if reason:
        return Decision(SKIPPED, reason, seen=(raw, free, price))
    refused = pretrade and pretrade(target.subscription_id, opens_position=mirror is None, notional=quantity * price)
    if refused:
        return Decision(REJECTED, refused, quantity=quantity, price=price, leverage=leverage, seen=(raw, free, price))
    if trade_math.margin_for(quantity, price, leverage) > free:
        return Decision(
            REJECTED, INSUFFICIENT_MARGIN, quantity=quantity, price=price, leverage=leverage,
            seen=(raw, free, price),
        )  # fmt: skip
    if slippage_exceeded(event.price, price, target.slippage_tolerance_pct):
        return Decision(
            REJECTED, SLIPPAGE_EXCEEDED, quantity=quantity, price=price, leverage=leverage,
            seen=(raw, free, price),
        )  # fmt: skip
    return Decision(COPIED, "", action, event.order_side, quantity, price, leverage, seen=(raw, free, price))


def position_reduce(event: EventView, *, price: Decimal, mirror: MirrorView | None, market: MarketView) -> Decision:
    """Close the mirror, or reduce it by the leader's share (model.Share)."""
    # Closing copies ignore the slippage tolerance: it protects entries,
    # and must never keep a follower in a position the leader has left.
    if mirror is None:
        return skip(NO_MIRROR_POSITION)
    if event.kind == POSITION_CLOSE:
        return Decision(
            COPIED, "", trade_math.CLOSE, event.order_side, mirror.quantity, price, mirror.leverage,
            seen=(None, None, price),
        )  # fmt: skip
    share = event.share
    attempted = None if share.is_all else share.exact(mirror.quantity)
    planned = reduce_by(mirror.quantity, share, market.constraints)
    if planned is None:
        return Decision(SKIPPED, sizing.BELOW_MIN_QUANTITY, seen=(attempted, None, price))
    action, quantity = planned
    return Decision(
        COPIED, "", action, event.order_side, quantity, price, mirror.leverage, seen=(attempted, None, price)
    )


def tpsl_set(mirror: MirrorView | None) -> Decision:
    if mirror is None:
        return skip(NO_MIRROR_POSITION)
    return Decision(COPIED, "", TPSL, quantity=mirror.quantity, leverage=mirror.leverage)
