"""Operational endpoints: health.

``/healthz`` answers within ``TOTAL_SECONDS`` whatever is down: each check
runs in its own small thread pool and is abandoned when it does not answer in
time (a frozen server would otherwise hold it forever; the pools are small, so
stuck checks cannot pile up, and a later probe reports ``timeout``).
See docs/operations.md ("Health") for each field.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime

from django.db import connection
from django.db.models import Min
from django.http import JsonResponse
from django.utils import timezone

from backoffice.models import Heartbeat, JobError
from config.celery import app as celery_app
from copytrading.models import LeaderEvent, LeaderEventStatus
from copytrading.outages import dispatch_failures

log = logging.getLogger(__name__)

TOTAL_SECONDS = 1.5
# Heartbeats: beat ticks every <= 5 s, the worker heartbeat task runs every 10 s.
BEAT_STALE_SECONDS = 30
WORKER_STALE_SECONDS = 60
# The outbox relay re-dispatches every 5 s; a pending event older than this is stuck.
OUTBOX_LAG_SECONDS = 60
# What makes /healthz answer 503: the web process cannot serve without them.
# Worker, beat and outbox lag are reported (alert on them) but a load balancer
# must not take web processes out because a worker died.
CRITICAL = ("db", "broker")

_db_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="healthz-db")
_broker_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="healthz-broker")


def _age(at: datetime | None, now: datetime) -> float | None:
    return None if at is None else round(max((now - at).total_seconds(), 0.0), 1)


def _liveness(age: float | None, stale_after: float) -> dict:
    if age is None:
        return {"status": "unknown", "age_seconds": None}
    return {"status": "ok" if age <= stale_after else "stale", "age_seconds": age}


def _check_database() -> dict:
    """One connection: reachability, the heartbeats, the outbox's oldest
    pending event and the count of open (unacknowledged) job errors."""
    try:
        now = timezone.now()
        beats = dict(Heartbeat.objects.values_list("name", "at"))
        oldest = LeaderEvent.objects.filter(status=LeaderEventStatus.PENDING).aggregate(m=Min("created_at"))["m"]
        lag = _age(oldest, now) or 0.0
        open_errors = JobError.objects.filter(acknowledged_at__isnull=True).count()
        return {
            "db": "ok",
            "worker": _liveness(_age(beats.get(Heartbeat.WORKER), now), WORKER_STALE_SECONDS),
            "beat": _liveness(_age(beats.get(Heartbeat.BEAT), now), BEAT_STALE_SECONDS),
            "outbox": {"status": "ok" if lag <= OUTBOX_LAG_SECONDS else "lagging", "lag_seconds": lag},
            "job_errors_unacknowledged": open_errors,
        }
    finally:
        connection.close()  # this thread's connection (back to the pool, if any)


def heartbeat_ages() -> dict[str, float]:
    """Seconds since each process kind's last heartbeat (/metrics reads it at scrape)."""
    now = timezone.now()
    return {name: max((now - at).total_seconds(), 0.0) for name, at in Heartbeat.objects.values_list("name", "at")}


def _check_broker() -> str:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=TOTAL_SECONDS)
    return "ok"


def _wait(future, deadline: float, name: str):
    try:
        return future.result(timeout=max(deadline - time.monotonic(), 0.0))
    except FutureTimeout:
        log.error("health check %s: no answer within %.1f s", name, TOTAL_SECONDS)
        return "timeout"
    except Exception:
        log.exception("health check: %s", name)
        return "error"


def healthz(request):
    deadline = time.monotonic() + TOTAL_SECONDS
    db_future = _db_pool.submit(_check_database)
    broker_future = _broker_pool.submit(_check_broker)
    db = _wait(db_future, deadline, "db")
    broker = _wait(broker_future, deadline, "broker")
    unknown = {"status": "unknown"}
    if isinstance(db, dict):
        body = {"db": db["db"], "broker": broker, "worker": db["worker"], "beat": db["beat"], "outbox": db["outbox"]}
        body["job_errors_unacknowledged"] = db["job_errors_unacknowledged"]
    else:
        body = {"db": db, "broker": broker, "worker": unknown, "beat": unknown, "outbox": unknown}
        body["job_errors_unacknowledged"] = None
    body["dispatch_failures"] = dispatch_failures.value
    healthy = all(body[name] == "ok" for name in CRITICAL)
    degraded = any(body[name]["status"] != "ok" for name in ("worker", "beat", "outbox"))
    status = "error" if not healthy else ("degraded" if degraded else "ok")
    response = JsonResponse({"status": status, **body}, status=200 if healthy else 503)
    if not healthy:
        response["Retry-After"] = "5"
    return response
