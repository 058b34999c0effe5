"""Thin Celery tasks of the portfolio lifecycle (listed in config/celery.py)."""

from celery import shared_task

from portfolios import lifecycle


@shared_task(acks_late=True)
def wind_down_portfolio(portfolio_id: int) -> str:
    """After a close commits: the leader's book, the followers, the archive.
    Safe to run twice; the reconciler below finishes what this one could not."""
    return lifecycle.portfolio_wind_down(portfolio_id=portfolio_id)


@shared_task
def reconcile_closing_portfolios() -> dict:
    return lifecycle.closing_portfolios_reconcile()
