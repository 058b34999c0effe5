"""The portfolio row lock, written once (the order: copytrading/locks.py).

It serializes a portfolio's trades and therefore its leader-event sequence
numbers, and guards its status and settings (subscribing, closing, editing,
templates, fee model)."""

from collections.abc import Iterable

from copytrading.locks import for_update
from portfolios.models import Portfolio


def lock_portfolio(portfolio_id: int) -> Portfolio:
    """The portfolio row, locked (DoesNotExist if there is none)."""
    return for_update(Portfolio.objects.filter(pk=portfolio_id)).get()


def lock_portfolios_of_accounts(account_ids: Iterable[int]) -> dict[int, int]:
    """Trading account id -> portfolio id of the leaders' accounts among
    ``account_ids``, their portfolio rows locked in ascending id."""
    rows = for_update(Portfolio.objects.filter(trading_account_id__in=list(account_ids)))
    return dict(rows.values_list("trading_account_id", "pk"))
