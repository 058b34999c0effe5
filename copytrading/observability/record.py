"""Recording what committed: the calls the engine, the watchdog and fees make
(one call per chunk, per event or per settlement batch, never per follower).
Each one records after the current transaction commits (at once outside
one), so work rolled back and retried is counted once."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db.models import Min
from django.utils import timezone

from copytrading.observability import metrics
from copytrading.outages import after_commit

log = logging.getLogger(__name__)


def event_accepted(event_id: int, portfolio_id: int, kind: str) -> None:
    """A leader event was recorded: one line that ties the request (its
    request_id) to the event_id the workers' lines carry."""

    def done() -> None:
        log.info("leader event recorded", extra={"event_id": event_id, "portfolio_id": portfolio_id, "kind": kind})

    after_commit(done, what="leader event log line")


def fanout_done(event_id: int, accepted_at: datetime) -> None:
    """An event completed: its latency from when it was recorded, observed
    once, and one line with it."""
    seconds = max((timezone.now() - accepted_at).total_seconds(), 0.0)

    def done() -> None:
        metrics.FANOUT_SECONDS.observe(seconds)
        log.info("leader event complete", extra={"event_id": event_id, "fanout_seconds": round(seconds, 4)})

    after_commit(done, what="fan-out latency metric")


def executions_observed(event, outcomes: list) -> None:
    """An execution listener (copytrading.propagation): a chunk's outcomes, tallied once."""
    tally = Counter((o.outcome, o.reason_code) for o in outcomes)
    after_commit(lambda: metrics.executions_record(tally), what="execution metrics")


def interventions(actions: Iterable[str]) -> None:
    counted = list(actions)
    if counted:
        after_commit(lambda: metrics.interventions_record(counted), what="watchdog intervention metrics")


def fee_settlements(amounts: Iterable[tuple[str, Decimal]]) -> None:
    moved = list(amounts)
    if moved:
        after_commit(lambda: metrics.fee_settlements_record(moved), what="fee settlement metrics")


def outbox_lag_seconds() -> float:
    """Age of the oldest pending leader event (the same read as /healthz)."""
    from copytrading.models import LeaderEvent, LeaderEventStatus

    oldest = LeaderEvent.objects.filter(status=LeaderEventStatus.PENDING).aggregate(m=Min("created_at"))["m"]
    return 0.0 if oldest is None else max((timezone.now() - oldest).total_seconds(), 0.0)


def register() -> None:
    """At start-up (copytrading/apps.py)."""
    from copytrading.propagation import register_execution_listener

    register_execution_listener(executions_observed, queries=False)
    metrics.OUTBOX_LAG_SECONDS.source = outbox_lag_seconds
