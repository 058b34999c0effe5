"""What one follower gets for one leader event. Pure: no Django.

The propagation engine loads everything a chunk needs, calls ``decide`` for
every follower, then writes the results set-based. Callers reach it as
``decisions.decide`` (tests patch that attribute).

- ``model``: outcomes, event kinds, reason codes, the views and ``Decision``
- ``rules``: sizing, a follower's share of a reduce or sell, the slippage tolerance
- ``positions``: margin position events (open/increase, reduce/close, TP/SL)
- ``spot``: spot buys and sells
- ``limits``: mirror limit orders, and how they follow a leader's limit fill
"""

from decimal import Decimal

from copytrading import leader_events, trade_math
from copytrading.decisions.limits import (  # noqa: F401 - re-exported: the public API of decisions
    LeaderStep,
    MirrorStep,
    limit_event,
    mirror_limit_fill,
    mirror_limit_steps,
)
from copytrading.decisions.model import (  # noqa: F401 - re-exported: the codes, views and Decision
    ADVANCED_ORDER_NOT_SUPPORTED,
    COPIED,
    COPYING_HALTED,
    DEFAULT_SLIPPAGE_TOLERANCE_PCT,
    FAILED,
    INSUFFICIENT_FUNDS,
    INSUFFICIENT_MARGIN,
    INTERNAL_ERROR,
    LIMIT_CANCEL,
    LIMIT_CANCELLED,
    LIMIT_KINDS,
    LIMIT_PLACE,
    LIMIT_PLACED,
    LIMIT_REPRICE,
    LIMIT_REPRICED,
    MIRROR_LIMIT_FILLED,
    MIRROR_LIMIT_NOT_ON_EXCHANGE,
    NO_HOLDING_TO_SELL,
    NO_MIRROR_ORDER,
    NO_MIRROR_POSITION,
    NOT_COPIED_REASONS,
    ORDER_CANCELLED,
    ORDER_FILLED,
    ORDER_NOT_COPIED,
    ORDER_OPEN,
    ORDER_REJECTED,
    PAPER_VENUE,
    POSITION_CLOSE,
    POSITION_EDIT,
    POSITION_EDIT_NOT_PROPAGATED,
    POSITION_KINDS,
    POSITION_OPEN,
    POSITION_REDUCE,
    PRODUCT_NOT_COPIED,
    REJECTED,
    SKIPPED,
    SLIPPAGE_EXCEEDED,
    SPOT_BUY,
    SPOT_PAIR_QUOTE_MISMATCH,
    SPOT_PRODUCT,
    SPOT_SELL,
    STOP_ORDER_NOT_SUPPORTED_FOR_COPY,
    SUBSCRIPTION_PAUSED,
    TPSL,
    TPSL_SET,
    Decision,
    EventView,
    MarketView,
    MirrorOrderView,
    MirrorView,
    PreTradeCheck,
    Share,
    TargetView,
    event_view,
    skip,
)
from copytrading.decisions.positions import position_open, position_reduce, tpsl_set
from copytrading.decisions.rules import slippage_exceeded  # noqa: F401 - re-exported
from copytrading.decisions.spot import mirror_spot_limit_fill, spot_limit_event, spot_trade
from copytrading.money import ZERO

# Events that fill something: a leader's limit fill is one of them.
FILL_KINDS = leader_events.FILL_KINDS


def decide(
    event: EventView,
    target: TargetView,
    *,
    free: Decimal,
    equity: Decimal,
    mirror: MirrorView | None,
    holding: Decimal,
    market: MarketView | None,
    holding_reserved: Decimal = ZERO,
    mirror_order: MirrorOrderView | None = None,
    pretrade: PreTradeCheck | None = None,
) -> Decision:
    if event.kind == ORDER_NOT_COPIED:
        # The event's own reason comes first, before the pause and product
        # checks (as for position_edit): the order is copied to nobody, so
        # every follower, paused or not, is told the same reason. Needs no
        # market (``market`` may be None).
        if event.reason_code not in NOT_COPIED_REASONS:
            raise ValueError(f"unknown not-copied reason {event.reason_code!r}")
        return skip(event.reason_code)
    if market is None:
        raise ValueError(f"event kind {event.kind!r} needs a market view")
    price = market.fill_price_buy if event.order_side == trade_math.BUY else market.fill_price_sell

    if event.kind in FILL_KINDS and event.limit_order_id is not None and mirror_order is not None:
        # A fill of the leader's limit order. A follower whose mirror limit
        # already filled (the venue matched it with the leader's) must not get
        # the position a second time; one whose mirror still rests (it was
        # placed or re-priced after the market moved) fills it now, at its
        # limit price. Without a live mirror limit the event copies like a
        # market order, below.
        if mirror_order.status == ORDER_FILLED:
            return skip(MIRROR_LIMIT_FILLED)
        if mirror_order.status == ORDER_OPEN:
            if event.kind in (SPOT_BUY, SPOT_SELL):
                return mirror_spot_limit_fill(event, holding=holding, order=mirror_order)
            return mirror_limit_fill(event, free=free, mirror=mirror, order=mirror_order, market=market)

    if event.kind == LIMIT_PLACED and target.venue != PAPER_VENUE:
        return skip(MIRROR_LIMIT_NOT_ON_EXCHANGE)
    if event.kind == POSITION_OPEN:
        return position_open(
            event, target, price=price, free=free, equity=equity, mirror=mirror, market=market, pretrade=pretrade
        )
    if event.kind in (POSITION_REDUCE, POSITION_CLOSE):
        return position_reduce(event, price=price, mirror=mirror, market=market)
    if event.kind in LIMIT_KINDS and market.product == SPOT_PRODUCT:
        return spot_limit_event(
            event, target, free=free, equity=equity, holding=holding, holding_reserved=holding_reserved,
            order=mirror_order, market=market, pretrade=pretrade,
        )  # fmt: skip
    if event.kind in LIMIT_KINDS:
        return limit_event(
            event, target, free=free, equity=equity, order=mirror_order, market=market, pretrade=pretrade
        )
    if event.kind == TPSL_SET:
        return tpsl_set(mirror)
    if event.kind == POSITION_EDIT:
        # A leverage/quantity edit changes the leader's own margin, not the
        # strategy: followers keep their own sizing and leverage.
        return skip(POSITION_EDIT_NOT_PROPAGATED)
    if event.kind in (SPOT_BUY, SPOT_SELL):
        return spot_trade(
            event, target, price=price, free=free, equity=equity, holding=holding, market=market,
            holding_reserved=holding_reserved, pretrade=pretrade,
        )  # fmt: skip
    raise ValueError(f"unknown event kind {event.kind!r}")
