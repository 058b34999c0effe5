"""The submitter's tasks (queue ``exchange``; scheduled in config/celery.py).

Listed in config/celery.py's ``include``: Celery's autodiscovery imports only
each app's ``tasks.py``, and this package is not an app."""

from dataclasses import asdict

from celery import shared_task

from copytrading.exchanges import submitter


@shared_task(name=submitter.SUBMIT_TASK, acks_late=True)
def submit_exchange_orders(order_ids: list[int]) -> dict:
    """Send these exchange orders (the engine queues one per chunk). Safe to
    run twice or beside the sweep: rows are claimed, sent rows looked up first."""
    return asdict(submitter.submit_orders(list(order_ids)))


@shared_task(name=submitter.SWEEP_TASK)
def sweep_exchange_orders() -> dict:
    """Send what no task is sending: pending rows whose dispatch was lost,
    rows due for a retry, rows of a submitter that died (lease expired)."""
    return asdict(submitter.submit_orders(None))
