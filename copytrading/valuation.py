"""Valuing positions and spot holdings at a mark: the one place of the PnL
formula. The REST API and GraphQL value a page of rows with it, the watchdog
(risk.selectors) sums a wallet's positions with it, and the WebSocket stream
values the rows it keeps in memory on every tick with it. Pure: no Django.

PostgreSQL sums the same formula in SQL for the watchdog's hot path
(risk.selectors._figures_sql); tests hold the two to the same numbers.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

HUNDRED = Decimal(100)
_Q8 = Decimal("0.00000001")
# Price x quantity at 8 places each carries 16; with large balances that is
# beyond the default 28 digits.
_PRECISION = 60
# One context passed explicitly: the stream values every socket's rows on each
# tick, and entering a local context per figure cost more than the figure.
_CTX = Context(prec=_PRECISION, rounding=ROUND_HALF_EVEN)


def q8(value: Decimal) -> Decimal:
    return value.quantize(_Q8, rounding=ROUND_HALF_EVEN, context=_CTX)


def position_unrealized(side: str, quantity: Decimal, entry: Decimal, mark: Decimal, margin: Decimal) -> Decimal:
    """One isolated position's PnL at ``mark`` (exact, unrounded):
    (mark - entry) x quantity for a long, (entry - mark) x quantity for a
    short; a loss is capped at the position's margin, all that closing it
    could ever cost (as the watchdog counts it)."""
    if side == "long":
        value = _CTX.multiply(_CTX.subtract(mark, entry), quantity)
    else:
        value = _CTX.multiply(_CTX.subtract(entry, mark), quantity)
    return value if value > -margin else -margin


def margin_level_pct(equity: Decimal, used_margin: Decimal) -> Decimal | None:
    """Equity as a percentage of the margin in use (8 dp); None without margin."""
    if used_margin <= 0:
        return None
    return q8(_CTX.divide(_CTX.multiply(equity, HUNDRED), used_margin))


@dataclass(frozen=True, slots=True)
class PositionValue:
    """An open margin position at a mark; every figure None without a mark."""

    mark_price: Decimal | None
    unrealized_pnl: Decimal | None  # 8 dp, the loss capped at the margin
    notional: Decimal | None  # quantity x mark, 8 dp
    # (margin + unrealized) / margin x 100: 100 at entry, 0 when the whole
    # isolated margin is lost
    margin_level_pct: Decimal | None


NO_POSITION_VALUE = PositionValue(None, None, None, None)


def position_value(
    *, side: str, quantity: Decimal, entry_price: Decimal, margin: Decimal, mark: Decimal | None
) -> PositionValue:
    if mark is None:
        return NO_POSITION_VALUE
    unrealized = position_unrealized(side, quantity, entry_price, mark, margin)
    notional = q8(_CTX.multiply(quantity, mark))
    level = margin_level_pct(_CTX.add(margin, unrealized), margin)
    return PositionValue(mark, q8(unrealized), notional, level)


@dataclass(frozen=True, slots=True)
class HoldingValue:
    """A spot holding at the mark of its primary-currency pair. An asset
    without a priced pair has no mark and no unrealized PnL (None, not 0)
    and is valued at what it cost."""

    mark_price: Decimal | None
    value: Decimal  # quantity x mark, or the cost basis without a mark; 8 dp
    unrealized_pnl: Decimal | None  # value - cost basis; 8 dp


def holding_value(*, quantity: Decimal, cost_basis: Decimal, mark: Decimal | None) -> HoldingValue:
    if mark is None:
        return HoldingValue(None, q8(cost_basis), None)
    value = _CTX.multiply(quantity, mark)
    return HoldingValue(mark, q8(value), q8(_CTX.subtract(value, cost_basis)))
