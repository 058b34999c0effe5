"""Paper-venue arithmetic for isolated-margin positions and spot. Pure: no Django."""

from dataclasses import dataclass
from decimal import Decimal

from copytrading.money import ZERO, q8, q8_down, q8_up, round_to_tick

LONG, SHORT = "long", "short"
BUY, SELL = "buy", "sell"

OPEN, INCREASE, REDUCE, CLOSE = "open", "increase", "reduce", "close"


def side_of(order_side: str) -> str:
    return LONG if order_side == BUY else SHORT


def closing_side(position_side: str) -> str:
    return SELL if position_side == LONG else BUY


def fill_price(mark: Decimal, order_side: str, spread_bps: Decimal, tick: Decimal) -> Decimal:
    """Market fill: the mark moved against the taker by the spread, on the tick."""
    if order_side == BUY:
        return round_to_tick(mark * (1 + spread_bps / 10000), tick, up=True)
    return round_to_tick(mark * (1 - spread_bps / 10000), tick, up=False)


def margin_for(quantity: Decimal, price: Decimal, leverage: int) -> Decimal:
    """Initial margin, rounded up so the lock always covers the position."""
    return q8_up(quantity * price / leverage)


def pnl(side: str, quantity: Decimal, entry: Decimal, exit_price: Decimal) -> Decimal:
    move = exit_price - entry if side == LONG else entry - exit_price
    return q8(move * quantity)


@dataclass(frozen=True)
class Step:
    action: str  # open, increase, reduce, close
    quantity: Decimal
    side: str  # position side after the step (for open/increase)


def plan_order(position_side: str | None, position_qty: Decimal, order_side: str, quantity: Decimal) -> list[Step]:
    """One-way netting of a market order against the current position.

    A side flip is always exactly two steps, close then open, never two opens.
    """
    want = side_of(order_side)
    if position_side is None or position_qty == 0:
        return [Step(OPEN, quantity, want)]
    if want == position_side:
        return [Step(INCREASE, quantity, want)]
    if quantity < position_qty:
        return [Step(REDUCE, quantity, position_side)]
    if quantity == position_qty:
        return [Step(CLOSE, position_qty, position_side)]
    return [Step(CLOSE, position_qty, position_side), Step(OPEN, quantity - position_qty, want)]


@dataclass(frozen=True)
class CloseResult:
    released_margin: Decimal
    pnl: Decimal  # the position's realized PnL on the closed part
    settled: Decimal  # what actually moves: pnl, or the loss capped at the margin


def close_part(
    *, side: str, quantity: Decimal, closed: Decimal, entry: Decimal, margin: Decimal, exit_price: Decimal
) -> CloseResult:
    """Close ``closed`` of ``quantity``: release margin pro rata (all of it on a
    full close, so rounding never strands a remainder) and realize PnL. An
    isolated position can lose at most the margin it releases."""
    released = margin if closed == quantity else q8(margin * closed / quantity)
    realized = pnl(side, closed, entry, exit_price)
    settled = realized if realized >= 0 else max(realized, -released)
    return CloseResult(released_margin=released, pnl=realized, settled=settled)


def average_entry(qty_a: Decimal, price_a: Decimal, qty_b: Decimal, price_b: Decimal) -> Decimal:
    total = qty_a + qty_b
    return q8((qty_a * price_a + qty_b * price_b) / total) if total else ZERO


def reserved_asset(*, spot: bool, side: str, base: str, quote: str, primary: str) -> str | None:
    """The holding a resting order of ``side`` reserves what it pays with
    from, or None for the primary currency (the wallet's locked part): a spot
    sell holds its base, a spot buy on a pair quoted in another asset (ETH/BTC)
    that asset; margin orders and other buys hold cash."""
    if not spot:
        return None
    if side == SELL:
        return base
    return None if quote == primary else quote


def spot_cost(quantity: Decimal, price: Decimal) -> Decimal:
    """What a spot buy pays: rounded up (the wallet never pays less than the fill)."""
    return q8_up(quantity * price)


def spot_proceeds(quantity: Decimal, price: Decimal) -> Decimal:
    """What a spot sell gets: rounded down (the wallet never gets more than the fill)."""
    return q8_down(quantity * price)


def basis_taken(held: Decimal, cost_basis: Decimal, quantity: Decimal) -> Decimal:
    """The cost basis that leaves a holding of ``held`` with ``quantity`` of
    it: pro rata, rounded down, and all of it when all of it leaves (so no
    basis is ever stranded on an empty holding)."""
    if quantity == held:
        return cost_basis
    return q8_down(cost_basis * quantity / held)


TAKE_PROFIT, STOP_LOSS, LIQUIDATION = "take_profit", "stop_loss", "liquidation"


def tpsl_error(side: str, entry: Decimal, take_profit: Decimal | None, stop_loss: Decimal | None) -> str | None:
    """None if the TP/SL pair fits the position, else the field that does not:
    a take-profit lies beyond the entry in the position's favour, a stop-loss
    on the other side."""
    if take_profit is not None and (take_profit <= entry if side == LONG else take_profit >= entry):
        return "take_profit"
    if stop_loss is not None and (stop_loss >= entry if side == LONG else stop_loss <= entry):
        return "stop_loss"
    return None


def crossed(order_side: str, limit: Decimal, mark: Decimal) -> bool:
    """A resting limit fills once the mark reaches it: a buy at or below the
    limit, a sell at or above."""
    return mark <= limit if order_side == BUY else mark >= limit


def unrealized_loss(side: str, quantity: Decimal, entry: Decimal, mark: Decimal) -> Decimal:
    """Exact (unrounded) loss at ``mark``; negative for a profit."""
    return (entry - mark) * quantity if side == LONG else (mark - entry) * quantity


def trigger_for(
    *,
    side: str,
    quantity: Decimal,
    entry: Decimal,
    margin: Decimal,
    take_profit: Decimal | None,
    stop_loss: Decimal | None,
    mark: Decimal,
) -> str | None:
    """What a price update does to an open isolated position: liquidation once
    its loss reaches its margin (it comes first: a gap through the stop that
    also eats the margin is a liquidation), then the stop-loss, then the
    take-profit; None if nothing triggers."""
    if quantity <= 0:
        return None
    if margin > 0 and unrealized_loss(side, quantity, entry, mark) >= margin:
        return LIQUIDATION
    if stop_loss is not None and (mark <= stop_loss if side == LONG else mark >= stop_loss):
        return STOP_LOSS
    if take_profit is not None and (mark >= take_profit if side == LONG else mark <= take_profit):
        return TAKE_PROFIT
    return None
