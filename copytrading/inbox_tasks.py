"""Periodic upkeep of the inbox (scheduled in config/celery.py).

A module of its own because Celery's autodiscovery imports only ``tasks.py``:
config/celery.py lists it in ``include`` so workers register it.
"""

from celery import shared_task

from copytrading.inbox import inbox_cleanup


@shared_task
def cleanup_inbox() -> int:
    """Drop inbox rows older than the dedup window. Running it twice is harmless."""
    return inbox_cleanup()
