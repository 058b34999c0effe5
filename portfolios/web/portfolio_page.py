"""A portfolio's public page: what ``GET catalog/<id>`` and its
``closed-trades`` give (the same reads: ``stats.portfolio_stats``,
``stats.closed_margin_trades`` / ``closed_spot_trades``), drawn as SVG on the
server, and the Copy button that opens the copy dialog
(followers/web/copy_dialog.py).

Who sees what is the API's rule: a public portfolio is everybody's; a private
one is its leader's only (``portfolios/<id>/stats``). Another signed-in user
may copy a private one by id and passcode (the subscribe API answers
``PASSCODE_REQUIRED`` for it), so they get a page that shows nothing but the
Copy button; an anonymous reader, whom the API tells nothing, gets the 404
(docs/decisions.md, NEW-A2-1)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from copytrading.models import Order
from copytrading.replicas import replica_alias
from copytrading.web import charts
from fees.selectors import leader_caps
from portfolios import catalog, stats
from portfolios.models import Portfolio, PortfolioMode, PortfolioStats, PortfolioStatus, StatsLine
from portfolios.performance import drawdown_series
from portfolios.selectors import traded_instruments

RECENT_TRADES = 20
# The charts' periods, in days (the copy preview's 7/30/90); none: since the start.
PERIODS = (7, 30, 90)
# The lines a portfolio's page can show, its own first (a margin portfolio
# has no spot figures worth a tab, and the other way round).
MODE_LINES = {
    PortfolioMode.MARGIN: [StatsLine.MARGIN],
    PortfolioMode.SPOT: [StatsLine.SPOT],
    PortfolioMode.ALL: [StatsLine.ALL, StatsLine.MARGIN, StatsLine.SPOT],
}


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One closed trade as the table shows it."""

    ref: int
    at: datetime
    line: str
    symbol: str
    pnl: Decimal


def equity_points(curve: list[list[str]]) -> list[tuple[str, Decimal]]:
    """The API's ``equity_curve`` (``[[day, equity], ...]``) as chart points."""
    return [(day, Decimal(equity)) for day, equity in curve]


def within(points: list[tuple[str, Decimal]], first_day: date) -> list[tuple[str, Decimal]]:
    """The points from ``first_day`` on, starting at the equity it had then
    (the last point before it, moved to ``first_day``): a quiet week is a
    flat line, not an empty chart."""
    start = first_day.isoformat()
    earlier = [p for p in points if p[0] < start]
    kept = [p for p in points if p[0] >= start]
    if earlier and (not kept or kept[0][0] != start):
        kept.insert(0, (start, earlier[-1][1]))
    return kept


def drawdown_points(points: list[tuple[str, Decimal]]) -> list[tuple[str, Decimal]]:
    """The drawdown chart's points: the stats keep no drawdown series, so it
    is derived from the equity curve (performance.drawdown_series)."""
    return list(zip((day for day, _ in points), drawdown_series(e for _, e in points), strict=True))


def recent_trades(portfolio: Portfolio, line: str) -> list[TradeRow]:
    """The newest closed trades of a line, as the closed-trades API lists
    them (both lines, merged newest first, for "all")."""
    rows: list[TradeRow] = []
    if line in (StatsLine.MARGIN, StatsLine.ALL):
        positions = (
            stats.closed_margin_trades(portfolio=portfolio)
            .select_related("instrument")
            .only("pk", "closed_at", "realized_pnl", "instrument__symbol")
            .order_by("-id")[:RECENT_TRADES]
        )
        rows += [TradeRow(p.pk, p.closed_at, "Margin", p.instrument.symbol, p.realized_pnl) for p in positions]
    if line in (StatsLine.SPOT, StatsLine.ALL):
        sells = sorted(stats.closed_spot_trades(portfolio=portfolio), key=lambda t: -t.ref)[:RECENT_TRADES]
        symbols = dict(
            Order.objects.using(replica_alias())
            .filter(pk__in=[t.ref for t in sells])
            .values_list("pk", "instrument__symbol")
        )
        rows += [TradeRow(t.ref, t.at, "Spot", symbols.get(t.ref, ""), t.pnl) for t in sells]
    rows.sort(key=lambda r: r.at, reverse=True)
    return rows[:RECENT_TRADES]


def readable_portfolio(request: HttpRequest, pk: int) -> Portfolio:
    """A public portfolio, or the reader's own; a private one of somebody
    else's is only found for a signed-in reader (who may hold its passcode)."""
    portfolio = Portfolio.objects.using(replica_alias()).select_related("leader").filter(pk=pk).first()
    if portfolio is None or (not portfolio.is_public and not request.user.is_authenticated):
        raise Http404("No such portfolio.")
    return portfolio


@require_GET
def portfolio_view(request: HttpRequest, pk: int) -> HttpResponse:
    portfolio = readable_portfolio(request, pk)
    own = request.user.is_authenticated and portfolio.leader_id == request.user.pk
    if not portfolio.is_public and not own:
        # Nothing the API hides: no name, no figures, not even its status.
        return render(request, "web/portfolio_private.html", {"portfolio_id": portfolio.pk})

    figures = stats.portfolio_stats(portfolio_id=portfolio.pk)
    lines = MODE_LINES[portfolio.mode]
    line = request.GET.get("line") if request.GET.get("line") in lines else lines[0]
    row = figures["lines"].get(line)
    points = equity_points(row["equity_curve"]) if row else []
    days = int(request.GET["days"]) if request.GET.get("days") in {str(d) for d in PERIODS} else None
    if days is not None:
        # The curve's days are UTC days (performance.daily_points).
        points = within(points, timezone.now().astimezone(UTC).date() - timedelta(days=days - 1))
    drawdowns = drawdown_points(points)
    average = figures["average_follower"]
    # The slots as the leaderboard counts them (the statistics' row); before the
    # first refresh, the leader's cap now.
    stored_cap = PortfolioStats.objects.filter(portfolio=portfolio, line=line).values_list("max_followers", flat=True)
    max_followers = next(iter(stored_cap), None) or leader_caps(portfolio.leader_id).max_followers
    follower_count = row["follower_count"] if row else 0
    context = {
        "portfolio": portfolio,
        "own": own,
        "is_active": portfolio.status == PortfolioStatus.ACTIVE,
        "is_favorite": request.user.is_authenticated
        and portfolio.pk in catalog.favorite_ids(request.user, [portfolio.pk]),
        "figures": figures,
        "line": line,
        "days": days,
        "periods": PERIODS,
        "line_tabs": [(value, StatsLine(value).label) for value in lines] if len(lines) > 1 else [],
        "row": row,
        "refreshed_at": row["refreshed_at"] if row else None,
        "follower_count": follower_count,
        "max_followers": max_followers,
        "open_slots": max(0, max_followers - follower_count),
        "average": average,
        "average_series": [p["roi_pct"] for p in average["series"]],
        "first_day": parse_date(points[0][0]) if points else None,
        # Safe: numbers, and the labels escaped by charts.
        "equity_chart": mark_safe(charts.line_chart(points, label=f"Equity of {portfolio.name}")),
        "drawdown_chart": mark_safe(charts.line_chart(drawdowns, label=f"Drawdown of {portfolio.name}", unit="%")),
        "instruments": traded_instruments(portfolio=portfolio),
        "trades": recent_trades(portfolio, line),
    }
    return render(request, "web/portfolio.html", context)


urlpatterns = [path("portfolios/<int:pk>/", portfolio_view, name="web-portfolio")]
