"""The per-portfolio overview of the back office (reads only): the
portfolio's key figures and equity curve (the statistics the ranking task
stores), its exposure and recent leader trades, and a page of its followers
with their equity, PnL and status. A constant number of queries for any
number of followers: the page's figures are read set-based."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Q, QuerySet

from copytrading.models import Order
from copytrading.money import ZERO
from followers.models import Subscription, SubscriptionStatus
from followers.selectors import pause_detail, risk_views
from portfolios.models import Portfolio, StatsLine
from portfolios.stats import follower_stats, portfolio_stats
from portfolios.stats_data import exact_sum, exact_value
from risk.selectors import wallet_figures

RECENT_TRADES = 10
FOLLOWERS_PER_PAGE = 50
# Which followers the list shows: ?status=<one of these>.
FOLLOWER_FILTERS = {
    "live": Q(status__in=[SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED]),
    "active": Q(status=SubscriptionStatus.ACTIVE),
    "paused": Q(status=SubscriptionStatus.PAUSED),
    "ended": Q(status=SubscriptionStatus.ENDED),
    "all": Q(),
}


@dataclass(frozen=True, slots=True)
class PortfolioFigures:
    stats: dict  # portfolios.stats.portfolio_stats
    line: str | None  # the line whose figures are shown ("all" when ranked)
    equity_curve: list[tuple[str, Decimal]]  # (ISO day, equity), oldest first
    used_margin: Decimal
    exposure: Decimal  # Σ quantity x mark of the leader's open positions
    open_positions: int
    followers: dict[str, int]  # by status
    followers_money: Decimal  # Σ copy-wallet balances of the live followers
    recent_trades: list[Order]


@dataclass(frozen=True, slots=True)
class FollowerRow:
    subscription: Subscription
    equity: Decimal  # at the marks
    realized_pnl: Decimal  # net of the fees paid
    unrealized_pnl: Decimal
    fees_paid: Decimal
    roi_pct: Decimal
    status_text: str  # why paused or ended ("" when active)


def portfolio_figures(portfolio: Portfolio) -> PortfolioFigures:
    stats = portfolio_stats(portfolio_id=portfolio.pk, history_days=90)
    lines = stats["lines"]
    line = StatsLine.ALL if StatsLine.ALL in lines else next(iter(lines), None)
    curve = [(day, Decimal(equity)) for day, equity in lines[line]["equity_curve"]] if line else []
    leader = wallet_figures([portfolio.trading_account_id]).get(portfolio.trading_account_id)
    live = FOLLOWER_FILTERS["live"]
    counts = portfolio.subscriptions.order_by().aggregate(
        **{status: Count("id", filter=Q(status=status)) for status in SubscriptionStatus.values}
    )
    money = portfolio.subscriptions.filter(live).order_by().aggregate(m=exact_sum("copy_account__balance"))["m"]
    recent = list(
        Order.objects.filter(account_id=portfolio.trading_account_id)
        .select_related("instrument")
        .order_by("-id")[:RECENT_TRADES]
    )
    return PortfolioFigures(
        stats=stats,
        line=line,
        equity_curve=curve,
        used_margin=leader.used_margin if leader else ZERO,
        exposure=leader.exposure if leader else ZERO,
        open_positions=leader.open_positions if leader else 0,
        followers={status: counts[status] for status in SubscriptionStatus.values},
        followers_money=exact_value(money, sqlite=connection.vendor == "sqlite"),
        recent_trades=recent,
    )


def followers_of(portfolio: Portfolio, *, status: str = "live") -> QuerySet[Subscription]:
    """The followers the overview lists, oldest first (a stable page order)."""
    return (
        portfolio.subscriptions.filter(FOLLOWER_FILTERS[status])
        .select_related("follower", "copy_account")
        .order_by("id")
    )


def follower_rows(subscriptions: list[Subscription]) -> list[FollowerRow]:
    """A page of followers with their figures (a constant number of queries)."""
    if not subscriptions:
        return []
    figures = {
        row["subscription"]: row
        for row in follower_stats([(s.pk, s.portfolio_id, s.copy_account_id) for s in subscriptions])["subscriptions"]
    }
    paused = [s.pk for s in subscriptions if s.status == SubscriptionStatus.PAUSED]
    risk = risk_views(paused) if paused else {}
    rows = []
    for s in subscriptions:
        f = figures[s.pk]
        rows.append(
            FollowerRow(
                subscription=s,
                equity=f["equity"],
                realized_pnl=f["pnl"],
                unrealized_pnl=f["unrealized_pnl"],
                fees_paid=f["fees_paid"],
                roi_pct=f["roi_pct"],
                status_text=pause_detail(s, risk.get(s.pk)),
            )
        )
    return rows
