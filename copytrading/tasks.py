"""Thin Celery tasks: take ids, call the engine, safe to run twice."""

import logging
from datetime import timedelta

import structlog
from celery import shared_task

from copytrading import propagation, reconcile
from copytrading.enqueue import PROPAGATE_CHUNK, PROPAGATE_EVENT
from copytrading.idempotency import idempotent_requests_cleanup
from copytrading.models import PropagationChunk
from copytrading.notifications.tasks import send_notification_emails, sweep_notification_emails  # noqa: F401 (registers them)
from copytrading.observability import metrics

log = logging.getLogger(__name__)


@shared_task(name=PROPAGATE_EVENT, acks_late=True)
def propagate_event(event_id: int) -> int:
    chunk_ids = propagation.event_start(event_id)
    for chunk_id in chunk_ids:
        propagate_chunk.delay(chunk_id)
    return len(chunk_ids)


@shared_task(name=PROPAGATE_CHUNK, acks_late=True)
def propagate_chunk(chunk_id: int) -> dict:
    event_id = PropagationChunk.objects.values_list("event_id", flat=True).get(pk=chunk_id)
    structlog.contextvars.bind_contextvars(event_id=event_id)  # on the chunk's log lines
    with metrics.CHUNK_SECONDS.time():
        result = propagation.chunk_propagate(chunk_id)
    propagation.event_complete(event_id)
    return {"copied": result.copied, "skipped": result.skipped, "rejected": result.rejected, "failed": result.failed}


@shared_task
def relay_outbox() -> int:
    return propagation.relay_undispatched()


@shared_task
def reconcile_propagations(stale_after_seconds: float = 120) -> dict:
    """Resume propagations whose chunks went stale (worker killed, message lost),
    then close mirrors left open behind their leader (copytrading/reconcile.py)."""
    stale = propagation.stale_chunks(older_than=timedelta(seconds=stale_after_seconds))
    for chunk_id in stale:
        propagate_chunk.delay(chunk_id)
    completed = sum(propagation.event_complete(event_id) for event_id in propagation.unfinished_events())
    repair = reconcile.orphans_repair()
    return {
        "resumed_chunks": len(stale),
        "completed_events": completed,
        "orphaned_mirrors_closed": repair.closed_positions,
        "orphaned_orders_cancelled": repair.cancelled_orders,
    }


@shared_task
def cleanup_idempotent_requests() -> int:
    """Drop Idempotency-Key records older than 24 hours. Running it twice is harmless."""
    return idempotent_requests_cleanup()


@shared_task
def purge_candles() -> int:
    """Drop price candles past the retention (``CANDLE_RETENTION_DAYS``). Harmless twice."""
    from copytrading.candles import candles_purge

    return candles_purge()


@shared_task
def maintain_partitions() -> dict:
    """Monthly partitions of the execution log and transfers created ahead
    (``PARTITION_MONTHS_AHEAD``); rows in a DEFAULT partition reported. Harmless twice."""
    from copytrading.partitions import partitions_maintain

    return partitions_maintain()
