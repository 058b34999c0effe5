"""Portfolio and follower statistics: the refresh that precomputes them (the
catalog reads only the result) and the reads of the detail pages."""

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from copytrading.models import Position, PositionStatus
from copytrading.money import ZERO, q8
from copytrading.replicas import replica_alias
from fees.selectors import leader_caps_many
from portfolios.models import FollowerDailyStats, Portfolio, PortfolioScore, PortfolioStats, StatsLine
from portfolios.performance import PCT, ClosedTrade, LineFigures, line_figures, pct
from portfolios.stats_data import AccountActivity, accounts_activity, live_followers, wallet_figures
from risk.selectors import wallet_figures as figures_at_marks

BATCH = 1000
STATS_FIELDS = [
    "pnl", "roi_pct", "win_rate_pct", "trade_count", "closed_count", "win_count", "follower_count",
    "max_followers", "max_drawdown_pct", "equity_curve", "refreshed_at",
]  # fmt: skip


def lines_of(activity: AccountActivity) -> dict[str, LineFigures]:
    capital = activity.capital
    common = {"capital": capital, "capital_flows": activity.capital_flows}
    return {
        StatsLine.MARGIN: line_figures(
            **common, pnl_events=activity.margin_pnl, closed=activity.margin_closed, trade_count=activity.margin_trades
        ),
        StatsLine.SPOT: line_figures(
            **common, pnl_events=activity.spot_pnl, closed=activity.spot_closed, trade_count=activity.spot_trades
        ),
        StatsLine.ALL: line_figures(
            **common,
            pnl_events=activity.margin_pnl + activity.spot_pnl,
            closed=activity.margin_closed + activity.spot_closed,
            trade_count=activity.margin_trades + activity.spot_trades,
        ),
    }


def _portfolio_rows(portfolio_ids: Sequence[int] | None) -> list[tuple[int, int, int]]:
    portfolios = Portfolio.objects.order_by("pk")
    if portfolio_ids is not None:
        portfolios = portfolios.filter(pk__in=list(portfolio_ids))
    return list(portfolios.values_list("pk", "trading_account_id", "leader_id"))


def stats_refresh(
    *,
    portfolio_ids: Sequence[int] | None = None,
    now: datetime | None = None,
    daily_point: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute the stats rows (every line) and (``daily_point``) today's
    average-follower point of the given portfolios, or of all. Idempotent; the
    ranking score is left as it is. ``progress(done, total)`` after each
    batch. Returns how many portfolios were refreshed."""
    now = now or timezone.now()
    rows = _portfolio_rows(portfolio_ids)
    for start in range(0, len(rows), BATCH):
        stats, days = _compute_batch(rows[start : start + BATCH], now)
        _write_batch(stats, days if daily_point else [])
        if progress is not None:
            progress(min(start + BATCH, len(rows)), len(rows))
    return len(rows)


def stats_stale(
    *, portfolio_ids: Sequence[int] | None = None, progress: Callable[[int, int], None] | None = None
) -> tuple[int, list[int]]:
    """What ``stats_refresh`` would change, writing nothing: ``(portfolios
    looked at, ids of those whose stats rows are missing or differ from a
    fresh computation)``; the refresh time itself does not count."""
    now = timezone.now()
    rows = _portfolio_rows(portfolio_ids)
    compared = [f for f in STATS_FIELDS if f != "refreshed_at"]
    stale: list[int] = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        fresh, _ = _compute_batch(batch, now)
        stored = {
            (row["portfolio_id"], row["line"]): row
            for row in PortfolioStats.objects.filter(portfolio_id__in=[pk for pk, _, _ in batch]).values(
                "portfolio_id", "line", *compared
            )
        }
        differ = {
            row.portfolio_id
            for row in fresh
            if (old := stored.get((row.portfolio_id, row.line))) is None
            or any(old[f] != getattr(row, f) for f in compared)
        }
        stale += sorted(differ)
        if progress is not None:
            progress(min(start + BATCH, len(rows)), len(rows))
    return len(rows), stale


def _compute_batch(
    batch: list[tuple[int, int, int]], now: datetime
) -> tuple[list[PortfolioStats], list[FollowerDailyStats]]:
    activity = accounts_activity([account_id for _, account_id, _ in batch])
    followers = defaultdict(list)
    for row in live_followers([pk for pk, _, _ in batch]):
        followers[row.portfolio_id].append(row.copy_account_id)
    wallets = wallet_figures(a for accounts in followers.values() for a in accounts)
    caps = leader_caps_many({leader_id for _, _, leader_id in batch})
    stats, days = [], []
    for portfolio_id, account_id, leader_id in batch:
        count = len(followers[portfolio_id])
        for line, figures in lines_of(activity[account_id]).items():
            stats.append(
                PortfolioStats(
                    portfolio_id=portfolio_id,
                    line=line,
                    pnl=figures.pnl,
                    roi_pct=figures.roi_pct,
                    win_rate_pct=figures.win_rate_pct,
                    trade_count=figures.trade_count,
                    closed_count=figures.closed_count,
                    win_count=figures.win_count,
                    follower_count=count,
                    max_followers=caps[leader_id].max_followers,
                    max_drawdown_pct=figures.max_drawdown_pct,
                    equity_curve=[[day.isoformat(), str(equity)] for day, equity in figures.equity_curve],
                    refreshed_at=now,
                )
            )
        results = [wallets[a] for a in followers[portfolio_id] if a in wallets]
        days.append(
            FollowerDailyStats(
                portfolio_id=portfolio_id,
                day=now.date(),
                followers=count,
                average_pnl=q8(sum((w.pnl for w in results), ZERO) / len(results)) if results else q8(ZERO),
                average_roi_pct=(
                    (sum((w.roi_pct for w in results), ZERO) / len(results)).quantize(PCT) if results else ZERO
                ),
                updated_at=now,
            )
        )
    return stats, days


def _write_batch(stats: list[PortfolioStats], days: list[FollowerDailyStats]) -> None:
    with transaction.atomic():
        PortfolioStats.objects.bulk_create(
            stats, update_conflicts=True, unique_fields=["portfolio", "line"], update_fields=STATS_FIELDS
        )
        FollowerDailyStats.objects.bulk_create(
            days,
            update_conflicts=True,
            unique_fields=["portfolio", "day"],
            update_fields=["followers", "average_pnl", "average_roi_pct", "updated_at"],
        )


# --- reads ----------------------------------------------------------------------------


def stats_row_body(row: PortfolioStats) -> dict:
    return {
        "pnl": row.pnl,
        "roi_pct": row.roi_pct,
        "win_rate_pct": row.win_rate_pct,
        "trade_count": row.trade_count,
        "closed_count": row.closed_count,
        "win_count": row.win_count,
        "follower_count": row.follower_count,
        "max_drawdown_pct": row.max_drawdown_pct,
        "equity_curve": row.equity_curve,
        "refreshed_at": row.refreshed_at,
    }


def portfolio_stats(*, portfolio_id: int, history_days: int = 365) -> dict:
    """Every line's figures, the score and the average follower, from the
    precomputed tables, and the leader account's equity and unrealized PnL at
    the current marks (5 queries, one more on SQLite)."""
    database = replica_alias()  # precomputed figures: a replica's delay is nothing to them
    rows = {r.line: r for r in PortfolioStats.objects.using(database).filter(portfolio_id=portfolio_id)}
    days = list(
        FollowerDailyStats.objects.using(database)
        .filter(portfolio_id=portfolio_id)
        .order_by("-day")[:history_days]
        .values_list("day", "followers", "average_pnl", "average_roi_pct")
    )
    days.reverse()
    latest = days[-1] if days else None
    any_row = next(iter(rows.values()), None)
    account_id = (
        Portfolio.objects.using(database).filter(pk=portfolio_id).values_list("trading_account_id", flat=True).first()
    )
    marked = figures_at_marks([account_id]).get(account_id) if account_id else None
    return {
        "portfolio": portfolio_id,
        "score": any_row.score if any_row else ZERO,
        # Live, at the current marks (the lines are realized, as of refreshed_at).
        "equity": q8(marked.equity) if marked else q8(ZERO),
        "unrealized_pnl": q8(marked.total_unrealized) if marked else q8(ZERO),
        "lines": {line: stats_row_body(row) for line, row in sorted(rows.items())},
        "average_follower": {
            "followers": latest[1] if latest else 0,
            "pnl": latest[2] if latest else q8(ZERO),
            "roi_pct": latest[3] if latest else ZERO.quantize(PCT),
            "series": [{"day": d, "followers": n, "pnl": p, "roi_pct": r} for d, n, p, r in days],
        },
    }


def score_history(*, portfolio_id: int, limit: int = 84) -> list[PortfolioScore]:
    """The latest rankings, newest first (84 = one week at one every 2 h)."""
    return list(score_rows(portfolio_id=portfolio_id)[:limit])


SCORE_ORDERING = ("-computed_at", "-id")


def score_rows(*, portfolio_id: int) -> QuerySet[PortfolioScore]:
    """Every ranking of a portfolio, newest first (the REST list pages it)."""
    return PortfolioScore.objects.using(replica_alias()).filter(portfolio_id=portfolio_id).order_by(*SCORE_ORDERING)


def equity_curves(*, portfolio_ids: Sequence[int], line: str, points: int = 60) -> dict[int, list[Decimal]]:
    """The last ``points`` days of many portfolios' equity curves on one line,
    oldest first, in one query: the leaderboard draws a sparkline per row and
    must not read them row by row."""
    if not portfolio_ids:
        return {}
    rows = (
        PortfolioStats.objects.using(replica_alias())
        .filter(portfolio_id__in=list(portfolio_ids), line=line)
        .values_list("portfolio_id", "equity_curve")
    )
    return {pk: [Decimal(equity) for _, equity in curve[-points:]] for pk, curve in rows}


def closed_margin_trades(*, portfolio: Portfolio) -> QuerySet[Position]:
    """The margin line's closed trades: the leader's own closed positions
    (the REST list pages them newest first by id)."""
    return (
        Position.objects.using(replica_alias())
        .filter(account_id=portfolio.trading_account_id, status=PositionStatus.CLOSED, leader_position__isnull=True)
        .only("pk", "closed_at", "realized_pnl")
    )


def closed_spot_trades(*, portfolio: Portfolio) -> list[ClosedTrade]:
    """The spot line's closed trades: sells, whose PnL is replayed from the
    account's fills (so they are built in Python, not read page by page)."""
    return accounts_activity([portfolio.trading_account_id])[portfolio.trading_account_id].spot_closed


def follower_stats(subscriptions: Sequence[tuple[int, int, int]]) -> dict:
    """Per subscription (id, portfolio id, copy wallet id) and in total:
    money in and out, realized PnL net of fees and its ROI, fees paid, and
    at the current marks the unrealized PnL, equity and total PnL (2 + 3
    queries, and 1 for the marks on PostgreSQL)."""
    accounts = [account_id for _, _, account_id in subscriptions]
    wallets = wallet_figures(accounts)
    marked = figures_at_marks(accounts)
    body = []
    funded = withdrawn = pnl = fees = equity = unrealized = ZERO
    for subscription_id, portfolio_id, account_id in subscriptions:
        w = wallets[account_id]
        m = marked[account_id]
        body.append(
            {
                "subscription": subscription_id,
                "portfolio": portfolio_id,
                "funded": w.funded,
                "withdrawn": w.withdrawn,
                "equity": q8(m.equity),
                "pnl": w.pnl,
                "unrealized_pnl": q8(m.total_unrealized),
                "total_pnl": q8(w.pnl + m.total_unrealized),
                "roi_pct": w.roi_pct,
                "fees_paid": w.fees_paid,
            }
        )
        funded += w.funded
        withdrawn += w.withdrawn
        pnl += w.pnl
        fees += w.fees_paid
        equity += m.equity
        unrealized += m.total_unrealized
    total = {
        "funded": funded,
        "withdrawn": withdrawn,
        "equity": q8(equity),
        "pnl": pnl,
        "unrealized_pnl": q8(unrealized),
        "total_pnl": q8(pnl + unrealized),
        "roi_pct": pct(pnl, funded),
        "fees_paid": fees,
    }
    return {"subscriptions": body, "total": total}
