"""What the ranking needs of a batch of portfolios, grouped in the database:
one row per account (or account and day), whatever the history's length, and
no id list travels (the batch is a subquery on a portfolio id range)."""

from collections import defaultdict
from datetime import datetime

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate

from copytrading.models import Order, OrderStatus, Position, PositionStatus, Product, Transfer, TransferKind
from copytrading.money import ZERO
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.performance import SpotFill, spot_realized
from portfolios.ranking import RankingInput
from portfolios.stats_data import (
    TRADING_KINDS,
    exact_sum,
    exact_value,
    live_copy_accounts,
    live_followers,
    sums_by,
    wallet_figures,
)


def _daily_pnl(accounts: QuerySet, since: datetime) -> dict[int, dict]:
    booked = Transfer.objects.filter(kind=TransferKind.REALIZED_PNL, created_at__gte=since)
    days: dict[int, dict] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for side, sign in (("credit_id", 1), ("debit_id", -1)):
        grouped = (
            booked.filter(**{f"{side}__in": accounts})
            .annotate(day=TruncDate("created_at"))
            .values(side, "day")
            .annotate(total=exact_sum("amount"))
            .values_list(side, "day", "total")
            .order_by()
        )
        sqlite = connection.vendor == "sqlite"
        for account_id, day, total in grouped:
            days[account_id][day] += sign * exact_value(total, sqlite=sqlite)
    return days


def batch_inputs(first_id: int, last_id: int, *, since: datetime, window_days: int) -> list[RankingInput]:
    """Ranking inputs of the active portfolios with ids in [first_id, last_id]."""
    portfolios = Portfolio.objects.filter(status=PortfolioStatus.ACTIVE, pk__gte=first_id, pk__lte=last_id)
    rows = list(portfolios.order_by("pk").values_list("pk", "trading_account_id"))
    accounts = portfolios.values("trading_account_id")
    debits = sums_by(
        Transfer.objects.exclude(kind__in=TRADING_KINDS).filter(debit_id__in=accounts), "debit_id", "amount"
    )
    credits = sums_by(
        Transfer.objects.exclude(kind__in=TRADING_KINDS).filter(credit_id__in=accounts), "credit_id", "amount"
    )
    capital = {a: credits[a] - debits[a] for a in set(credits) | set(debits)}
    days = _daily_pnl(accounts, since)
    closed = {
        account_id: (n, wins)
        for account_id, n, wins in Position.objects.filter(
            account_id__in=accounts,
            status=PositionStatus.CLOSED,
            leader_position__isnull=True,
            closed_at__gte=since,
        )
        .values("account_id")
        .annotate(n=Count("id"), wins=Count("id", filter=Q(realized_pnl__gt=0)))
        .values_list("account_id", "n", "wins")
        .order_by()
    }
    filled = Order.objects.filter(account_id__in=accounts, status=OrderStatus.FILLED)
    trades = dict(
        filled.filter(created_at__gte=since)
        .values("account_id")
        .annotate(n=Count("id"))
        .values_list("account_id", "n")
        .order_by()
    )
    # Spot sells: their PnL is replayed from the account's whole spot history.
    fills: dict[int, list[SpotFill]] = defaultdict(list)
    for account_id, pk, at, asset, side, quantity, price in (
        filled.filter(instrument__product=Product.SPOT)
        .order_by("pk")
        .values_list("account_id", "pk", "created_at", "instrument__base", "side", "quantity", "price")
    ):
        fills[account_id].append(SpotFill(pk, at, asset, side, quantity, price))
    spot = {a: [t for t in spot_realized(f) if t.at >= since] for a, f in fills.items()}

    portfolio_ids = portfolios.values("pk")
    followers = defaultdict(list)
    for row in live_followers(portfolio_ids):
        followers[row.portfolio_id].append(row.copy_account_id)
    wallets = wallet_figures(live_copy_accounts(portfolio_ids))

    first_day = since.date()
    inputs = []
    for portfolio_id, account_id in rows:
        daily = [ZERO] * (window_days + 1)  # calendar days: the window's ends are partial
        for day, total in days.get(account_id, {}).items():
            daily[min(window_days, max(0, (day - first_day).days))] += total
        sells = spot.get(account_id, [])
        for t in sells:
            daily[min(window_days, max(0, (t.at.date() - first_day).days))] += t.pnl
        n_closed, n_wins = closed.get(account_id, (0, 0))
        results = [wallets[w] for w in followers[portfolio_id] if w in wallets]
        inputs.append(
            RankingInput(
                portfolio_id=portfolio_id,
                trades=trades.get(account_id, 0),
                closed=n_closed + len(sells),
                wins=n_wins + sum(1 for t in sells if t.pnl > 0),
                pnl=sum(daily, ZERO),
                capital=capital.get(account_id, ZERO),
                daily_pnl=daily,
                followers=len(results),
                followers_in_profit=sum(1 for w in results if w.pnl > 0),
            )
        )
    return inputs
