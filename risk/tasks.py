"""Thin Celery tasks of the watchdog: idempotent, safe to run twice."""

from datetime import datetime

from celery import shared_task
from django.conf import settings

from copytrading.observability import metrics
from risk import services, watchdog


@shared_task(acks_late=True)
def watchdog_tick(at: str | None = None) -> dict:
    """Every 30 s (beat): plan the slot's tick, let other watchdog workers
    join in, and drain it here too. A second delivery of the same slot finds
    the tick planned and its chunks done, and does nothing. ``at`` (ISO 8601)
    names another slot than the current one (benchmarks, replays)."""
    with metrics.WATCHDOG_TICK_SECONDS.time():
        tick, _ = watchdog.watchdog_tick_plan(now=datetime.fromisoformat(at) if at else None)
        helpers = min(int(getattr(settings, "RISK_WATCHDOG_WORKERS", 2)), tick.chunk_count) - 1
        for _ in range(max(helpers, 0)):
            watchdog_drain.delay(tick.pk)
        report = watchdog.watchdog_drain(tick_id=tick.pk)
    return {"tick": tick.number, "chunks": report.chunks, "paused": len(report.paused)}


@shared_task(acks_late=True)
def watchdog_drain(tick_id: int) -> int:
    return watchdog.watchdog_drain(tick_id=tick_id).chunks


@shared_task(acks_late=True)
def daily_reset() -> int:
    """00:00 UTC (beat): lift the pauses for yesterday's realized loss."""
    return len(services.daily_reset_apply())
