"""The exchange reconciliation's periodic task (beat: config/celery.py,
EXCHANGE_RECONCILE_INTERVAL_SECONDS). Thin: the service does the work."""

from celery import shared_task

from copytrading.exchanges.reconciliation import TASK, exchange_accounts_reconcile


@shared_task(name=TASK)
def reconcile_exchange_accounts(account_id: int | None = None) -> dict:
    """Compare exchange-bound accounts with their exchanges; safe to run twice
    (a drift is reported and repaired once; runs serialize per account)."""
    report = exchange_accounts_reconcile(account_id=account_id)
    return {
        "accounts": len(report.accounts),
        "findings": report.findings,
        "new": sum(len(a.new) for a in report.accounts),
        "unreachable": len(report.unreachable),
    }
