"""Portfolio performance arithmetic: realized spot trades, equity curve, drawdown,
line figures. Pure: no Django (the loaders in portfolios.stats_data feed it)."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from copytrading.money import ZERO, q8_down, q8_up

PCT = Decimal("0.01")
HUNDRED = Decimal("100")


@dataclass(frozen=True, slots=True)
class SpotFill:
    """A filled spot order of one account, in the order the venue applied it."""

    order_id: int
    at: datetime
    asset: str
    side: str  # buy / sell
    quantity: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A finished trade: a closed margin position or a spot sell."""

    ref: int  # position id (margin) or order id (spot)
    at: datetime
    pnl: Decimal


def spot_realized(fills: Iterable[SpotFill]) -> list[ClosedTrade]:
    """Replay an account's spot fills at average cost, exactly as the paper venue
    books them (copytrading.venue.apply_fills): a buy costs q8_up(qty x price),
    a sell yields q8_down(qty x price) against its pro-rata share of the basis."""
    books: dict[str, list[Decimal]] = {}
    trades = []
    for f in fills:
        book = books.setdefault(f.asset, [ZERO, ZERO])  # quantity, cost basis
        if f.side == "buy":
            book[0] += f.quantity
            book[1] += q8_up(f.quantity * f.price)
        elif book[0] > 0:
            quantity = min(f.quantity, book[0])
            proceeds = q8_down(quantity * f.price)
            basis = book[1] if quantity == book[0] else q8_down(book[1] * quantity / book[0])
            book[0] -= quantity
            book[1] -= basis
            trades.append(ClosedTrade(f.order_id, f.at, proceeds - basis))
    return trades


def pct(part: Decimal, whole: Decimal) -> Decimal:
    """``part`` as a percentage of ``whole`` at 2 dp (0 when there is no whole)."""
    if whole <= 0:
        return ZERO.quantize(PCT)
    return (part * HUNDRED / whole).quantize(PCT)


def max_drawdown_pct(equities: Iterable[Decimal]) -> Decimal:
    """The largest fall from a running peak, in percent of that peak."""
    peak = None
    worst = ZERO
    for equity in equities:
        if peak is None or equity > peak:
            peak = equity
        elif peak > 0:
            worst = max(worst, (peak - equity) * HUNDRED / peak)
    return worst.quantize(PCT)


def drawdown_series(equities: Iterable[Decimal]) -> list[Decimal]:
    """How far each equity stands below the running peak before it, in
    percent of that peak (0 at a new high, never positive: drawn as a dip).
    Its lowest value is ``-max_drawdown_pct`` of the same equities."""
    peak = None
    points = []
    for equity in equities:
        if peak is None or equity > peak:
            peak = equity
        fall = (peak - equity) * HUNDRED / peak if peak > 0 else ZERO
        points.append((-fall).quantize(PCT) + 0)  # + 0: no "-0.00"
    return points


def equity_series(
    capital_flows: Iterable[tuple[datetime, Decimal]], pnl_events: Iterable[tuple[datetime, Decimal]]
) -> list[tuple[datetime, Decimal]]:
    """Realized equity after every change: money put in plus realized PnL.
    At equal times a funding counts before the PnL (an account is funded first)."""
    changes = sorted(
        [(at, 0, amount) for at, amount in capital_flows] + [(at, 1, amount) for at, amount in pnl_events],
        key=lambda c: (c[0], c[1]),
    )
    equity = ZERO
    points = []
    for at, _, amount in changes:
        equity += amount
        points.append((at, equity))
    return points


def daily_points(points: list[tuple[datetime, Decimal]]) -> list[tuple[date, Decimal]]:
    """The last value of each day (UTC), for charts."""
    by_day: dict[date, Decimal] = {}
    for at, value in points:
        by_day[at.date()] = value
    return sorted(by_day.items())


@dataclass
class LineFigures:
    """The statistics of one product line (margin, spot, or both)."""

    pnl: Decimal = ZERO
    roi_pct: Decimal = ZERO
    win_rate_pct: Decimal = ZERO
    trade_count: int = 0
    closed_count: int = 0
    win_count: int = 0
    max_drawdown_pct: Decimal = ZERO
    equity_curve: list[tuple[date, Decimal]] = field(default_factory=list)


def line_figures(
    *,
    capital: Decimal,
    capital_flows: list[tuple[datetime, Decimal]],
    pnl_events: list[tuple[datetime, Decimal]],
    closed: list[ClosedTrade],
    trade_count: int,
) -> LineFigures:
    """PnL is the realized PnL booked to the account (``pnl_events``); ROI is it
    over the capital put in; the win rate counts closed trades in profit."""
    pnl = sum((amount for _, amount in pnl_events), ZERO)
    wins = sum(1 for t in closed if t.pnl > 0)
    points = equity_series(capital_flows, pnl_events)
    return LineFigures(
        pnl=pnl,
        roi_pct=pct(pnl, capital),
        win_rate_pct=pct(Decimal(wins), Decimal(len(closed))),
        trade_count=trade_count,
        closed_count=len(closed),
        win_count=wins,
        max_drawdown_pct=max_drawdown_pct(e for _, e in points),
        equity_curve=daily_points(points),
    )
