"""What a new mark does to the hypothetical wallet, as the paper venue's
price-driven matching does it to a real one (``copytrading.matching``). Pure.

- A mirror limit fills together with its leader's order, in the same pass,
  when the mark crosses it: followed step by step through
  ``decisions.mirror_limit_steps`` (margin), or whole at its price (spot);
  one that cannot fill ends (cancelled, or rejected without the margin).
- A mirror's own take-profit, stop-loss or liquidation (``trade_math.trigger_for``)
  closes it at the market.

The leader's fill events that follow then find the mirror filled or closed,
as the fan-out finds them.
"""

from datetime import datetime
from decimal import Decimal

from copytrading import decisions, trade_math
from copytrading.decisions import LeaderStep, MarketView
from copytrading.leader_events import PositionClose, PositionOpen, PositionReduce
from copytrading.money import ZERO
from followers.replay.book import Book, Market, Realized


def leader_steps(events: list) -> tuple[list[LeaderStep], int | None, int | None]:
    """How the leader's limit order filled, from its fill events (one order's
    consecutive steps): the steps, the leader position it netted against and
    the one it opened or increased."""
    steps: list[LeaderStep] = []
    before = opened = None
    for data in events:
        if isinstance(data, PositionOpen):
            steps.append(LeaderStep(decisions.POSITION_OPEN, quantity=data.quantity))
            opened = data.leader_position_id
        elif isinstance(data, PositionReduce):
            steps.append(
                LeaderStep(
                    decisions.POSITION_REDUCE,
                    data.quantity or ZERO,
                    data.fraction or ZERO,
                    data.quantity_before or ZERO,
                )
            )
            before = data.leader_position_id
        elif isinstance(data, PositionClose):
            steps.append(LeaderStep(decisions.POSITION_CLOSE))
            before = data.leader_position_id
    # An increase met the position it grew (a fresh open met none: no mirror has its id yet).
    return steps, before if before is not None else opened, opened


def mirror_fills_with_leader(
    book: Book, market: Market, view: MarketView, order_key: int, events: list
) -> list[Realized]:
    """The follower's resting mirror of the leader's order ``order_key``,
    filled in the pass that filled the leader's (``events``: its fill events)."""
    order = book.orders[order_key]
    if market.spot:
        return _spot(book, market, order_key, order)
    steps, before, opened = leader_steps(events)
    mirror = book.positions.get(before) if before is not None else None
    planned, _ = decisions.mirror_limit_steps(
        steps,
        order_quantity=events[0].order_quantity or ZERO,
        mirror_order_quantity=order.quantity,
        mirror_quantity=mirror.quantity if mirror else None,
        price=order.price,
        constraints=view.constraints,
    )
    if not planned:
        book.end(order_key, market, decisions.ORDER_CANCELLED)
        return []
    # The margin check of Matcher._plan: the order's own reservation counts as
    # free, and what a closing step releases and settles too.
    free = book.free + order.reserved
    held = mirror
    for step in planned:
        if step.action in (trade_math.REDUCE, trade_math.CLOSE):
            result = trade_math.close_part(
                side=held.side, quantity=held.quantity, closed=step.quantity, entry=held.entry_price,
                margin=held.margin, exit_price=order.price,
            )  # fmt: skip
            free += result.released_margin + result.settled
            continue
        leverage = held.leverage if step.action == trade_math.INCREASE and held else order.leverage
        margin = trade_math.margin_for(step.quantity, order.price, leverage)
        if margin > free:
            book.end(order_key, market, decisions.ORDER_REJECTED)
            return []
        free -= margin
    book.end(order_key, market, decisions.ORDER_FILLED)
    realized: list[Realized] = []
    side = order.side
    for step in planned:
        if step.action in (trade_math.REDUCE, trade_math.CLOSE):
            realized += book.close(before, step.quantity, order.price)
        elif step.action == trade_math.INCREASE:
            book.increase(before, step.quantity, order.price)
        else:
            book.open(opened, market, side, step.quantity, order.price, order.leverage)
    return realized


def _spot(book: Book, market: Market, order_key: int, order) -> list[Realized]:
    """A spot mirror limit fills whole at its price, paid by what it reserved
    (copytrading.matching.spot), or ends cancelled."""
    if order.side == trade_math.SELL:
        held = book.holdings.get(market.base)
        if held is None or held.quantity < order.quantity:
            book.end(order_key, market, decisions.ORDER_CANCELLED)
            return []
        action = decisions.SPOT_SELL
    else:
        cost = trade_math.spot_cost(order.quantity, order.price)
        if market.quote != market.primary:
            paid = book.holdings.get(market.quote)
            free = paid.quantity - paid.reserved if paid else ZERO
        else:
            free = book.free
        if cost > free + order.reserved:
            book.end(order_key, market, decisions.ORDER_CANCELLED)
            return []
        action = decisions.SPOT_BUY
    quantity, price = order.quantity, order.price
    book.end(order_key, market, decisions.ORDER_FILLED)
    fill = decisions.Decision(decisions.COPIED, "", action, order.side, quantity, price)
    return book.apply(fill, market, position_key=None, order_key=None, via_limit=False)


def triggers(book: Book, market: Market, view: MarketView, mark: Decimal) -> list[Realized]:
    """Mirrors of ``market`` whose liquidation, stop-loss or take-profit the
    mark reaches, closed at the market (Matcher.trigger_positions)."""
    realized: list[Realized] = []
    for key, p in list(book.positions.items()):
        if p.instrument_id != market.instrument_id:
            continue
        fired = trade_math.trigger_for(
            side=p.side, quantity=p.quantity, entry=p.entry_price, margin=p.margin,
            take_profit=p.take_profit, stop_loss=p.stop_loss, mark=mark,
        )  # fmt: skip
        if fired:
            side = trade_math.closing_side(p.side)
            price = view.fill_price_buy if side == trade_math.BUY else view.fill_price_sell
            realized += book.close(key, p.quantity, price)
    return realized


def range_triggers(book: Book, market: Market, low: Decimal, high: Decimal, *, since: datetime) -> list[Realized]:
    """Mirrors of ``market`` whose stop-loss, liquidation or take-profit the
    price reached within the hour that began at ``since`` (its low and high),
    closed at that level: on the way against the mirror the first level
    reached (the stop or the liquidation), else the take-profit (a range that
    reaches both is taken as having gone against the mirror first). A mirror
    opened, resized or given its TP/SL during the hour is left to the marks
    (the range may have been made before it)."""
    realized: list[Realized] = []
    for key, p in list(book.positions.items()):
        if p.instrument_id != market.instrument_id or p.quantity <= 0:
            continue
        if p.changed_at is not None and p.changed_at >= since:
            continue
        long = p.side == trade_math.LONG
        against, towards = (low, high) if long else (high, low)
        levels = []
        if p.stop_loss is not None and (against <= p.stop_loss if long else against >= p.stop_loss):
            levels.append(p.stop_loss)
        if p.margin > 0:
            liquidation = p.entry_price - p.margin / p.quantity if long else p.entry_price + p.margin / p.quantity
            if against <= liquidation if long else against >= liquidation:
                levels.append(liquidation)
        if levels:
            level = max(levels) if long else min(levels)
        elif p.take_profit is not None and (towards >= p.take_profit if long else towards <= p.take_profit):
            level = p.take_profit
        else:
            continue
        view = market.view_at(max(level, ZERO))  # a 1x long's liquidation level is 0
        price = view.fill_price_sell if long else view.fill_price_buy
        realized += book.close(key, p.quantity, price)
    return realized
