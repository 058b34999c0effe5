"""Reads of the portfolios app."""

from portfolios.locks import lock_portfolios_of_accounts


class PortfolioLeaderBook:
    """Which trading accounts are leaders' (registered into the core's matching
    in apps.py, so the core reaches portfolios without importing them)."""

    def lock_portfolios(self, account_ids: list[int]) -> dict[int, int]:
        # The portfolio row lock serializes a portfolio's leader events (and
        # so their sequence numbers) with the leader's own API calls.
        return lock_portfolios_of_accounts(account_ids)
