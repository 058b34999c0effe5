"""Thin Celery tasks of exchange-bound portfolios (listed in config/celery.py)."""

from celery import shared_task
from django.conf import settings

from portfolios import exchange


@shared_task(name="portfolios.exchange_tasks.poll_leader_trades", acks_late=True)
def poll_leader_trades(account_id: int) -> dict:
    """One bound account's new trades → leader events. A second poll of the
    same account while one runs does nothing (SKIP LOCKED)."""
    report = exchange.leader_trades_poll(account_id=account_id)
    return {"skipped": report.skipped, "trades": report.trades, "events": len(report.events), "error": report.error}


@shared_task(name="portfolios.exchange_tasks.sweep_leader_trades")
def sweep_leader_trades() -> int:
    """The beat: one poll task per bound account (they run in parallel on
    the workers; each account is polled by one of them at a time)."""
    accounts = exchange.bound_accounts_due()
    for account_id in accounts:
        # Not run within a few periods: the next sweep's task covers it.
        poll_leader_trades.apply_async((account_id,), expires=settings.LEADER_TRADES_POLL_SECONDS * 3)
    return len(accounts)
