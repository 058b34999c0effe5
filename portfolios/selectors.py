"""Reads of the portfolios app."""

from copytrading.models import Order, OrderStatus, Position, PositionStatus, Product, Side
from copytrading.replicas import replica_alias
from portfolios.locks import lock_portfolios_of_accounts
from portfolios.models import Portfolio


class PortfolioLeaderBook:
    """Which trading accounts are leaders' (registered into the core's matching
    in apps.py, so the core reaches portfolios without importing them)."""

    def lock_portfolios(self, account_ids: list[int]) -> dict[int, int]:
        # The portfolio row lock serializes a portfolio's leader events (and
        # so their sequence numbers) with the leader's own API calls.
        return lock_portfolios_of_accounts(account_ids)


def traded_instruments(*, portfolio: Portfolio) -> list[str]:
    """The symbols of the instruments in the portfolio's closed trades (the
    public closed-trades list: closed margin positions and spot sells), in
    alphabetical order; never what is open now, which only the leader sees."""
    database = replica_alias()
    account_id = portfolio.trading_account_id
    margin = (
        Position.objects.using(database)
        .filter(account_id=account_id, status=PositionStatus.CLOSED, leader_position__isnull=True)
        .values_list("instrument__symbol", flat=True)
        .distinct()
        .order_by()
    )
    spot = (
        Order.objects.using(database)
        .filter(account_id=account_id, status=OrderStatus.FILLED, side=Side.SELL, instrument__product=Product.SPOT)
        .values_list("instrument__symbol", flat=True)
        .distinct()
        .order_by()
    )
    return sorted({*margin, *spot})
