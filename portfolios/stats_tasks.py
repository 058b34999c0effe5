"""Thin Celery tasks: the statistics refresh and the ranking."""

from celery import shared_task

from portfolios import scoring, stats


@shared_task
def refresh_portfolio_stats(portfolio_ids: list[int] | None = None) -> int:
    """Recompute the catalog's stats rows (idempotent; every 5 min by beat)."""
    return stats.stats_refresh(portfolio_ids=portfolio_ids)


@shared_task
def rank_portfolios() -> int:
    """Every 2 h: fresh statistics, then the scores (a singleton: a second run
    meanwhile returns at once)."""
    stats.stats_refresh()
    return len(scoring.ranking_run())
