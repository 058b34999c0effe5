"""Reads of the portfolios app."""

from portfolios.models import Portfolio


class PortfolioLeaderBook:
    """Which trading accounts are leaders' (registered into the core's matching
    in apps.py, so the core reaches portfolios without importing them)."""

    def lock_portfolios(self, account_ids: list[int]) -> dict[int, int]:
        # The portfolio row lock serializes a portfolio's leader events (and
        # so their sequence numbers) with the leader's own API calls.
        rows = (
            Portfolio.objects.select_for_update()
            .filter(trading_account_id__in=account_ids)
            .order_by("pk")
            .values_list("trading_account_id", "pk")
        )
        return dict(rows)
