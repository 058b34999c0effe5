"""/healthz: database, broker, worker and beat liveness, outbox lag; each check
bounded, 503 only when a critical one (database, broker) fails.
tests/outages/ checks it against real stopped and frozen servers."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from backoffice import views
from backoffice.models import Heartbeat
from backoffice.services import heartbeat_record
from copytrading.models import LeaderEvent, LeaderEventStatus

pytestmark = pytest.mark.django_db(transaction=True)  # the checks run on their own threads


def test_fresh_heartbeats_and_no_backlog_are_ok(client):
    heartbeat_record(name=Heartbeat.BEAT)
    heartbeat_record(name=Heartbeat.WORKER)
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert (body["db"], body["broker"]) == ("ok", "ok")
    assert body["worker"]["status"] == body["beat"]["status"] == "ok"
    assert body["outbox"] == {"status": "ok", "lag_seconds": 0.0}
    assert isinstance(body["dispatch_failures"], int)


def test_stale_heartbeats_and_an_old_pending_event_are_reported_not_critical(client):
    now = timezone.now()
    heartbeat_record(name=Heartbeat.BEAT, at=now - timedelta(seconds=views.BEAT_STALE_SECONDS + 30))
    heartbeat_record(name=Heartbeat.WORKER, at=now - timedelta(seconds=views.WORKER_STALE_SECONDS + 30))
    event = LeaderEvent.objects.create(portfolio_id=1, seq=1, kind="position_open", payload={})
    LeaderEvent.objects.filter(pk=event.pk).update(created_at=now - timedelta(seconds=600))
    done = LeaderEvent.objects.create(portfolio_id=2, seq=1, kind="position_open", payload={})
    LeaderEvent.objects.filter(pk=done.pk).update(created_at=now - timedelta(days=1), status=LeaderEventStatus.DONE)

    r = client.get("/healthz")
    assert r.status_code == 200  # a load balancer keeps the web process
    body = r.json()
    assert body["status"] == "degraded"
    assert body["beat"]["status"] == body["worker"]["status"] == "stale"
    assert body["beat"]["age_seconds"] >= views.BEAT_STALE_SECONDS + 30
    assert body["outbox"]["status"] == "lagging"
    assert 600 <= body["outbox"]["lag_seconds"] < 700  # the pending one, not the old done one


def test_a_database_check_that_does_not_answer_is_a_timeout_and_503(client, monkeypatch):
    release, finished = threading.Event(), threading.Event()
    real = views._check_database

    def frozen():
        try:
            release.wait(30)
            return real()
        finally:
            finished.set()

    monkeypatch.setattr(views, "_check_database", frozen)
    monkeypatch.setattr(views, "TOTAL_SECONDS", 0.2)
    try:
        r = client.get("/healthz")
    finally:
        release.set()
        # The late check still queries from its thread: let it end before the
        # test's teardown empties the tables (SQLite's shared in-memory
        # database would refuse the flush while it reads: "table is locked").
        finished.wait(10)
    assert r.status_code == 503
    assert r["Retry-After"]
    body = r.json()
    assert (body["status"], body["db"], body["broker"]) == ("error", "timeout", "ok")
    assert body["worker"] == body["beat"] == body["outbox"] == {"status": "unknown"}


def test_a_broker_error_is_503(client, monkeypatch):
    def refused():
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(views, "_check_broker", refused)
    r = client.get("/healthz")
    assert r.status_code == 503
    assert (r.json()["status"], r.json()["db"], r.json()["broker"]) == ("error", "ok", "error")


def test_the_worker_heartbeat_task_and_the_beat_scheduler_write_heartbeats(monkeypatch):
    from django_celery_beat.schedulers import DatabaseScheduler

    from backoffice.beat import HeartbeatScheduler
    from backoffice.tasks import worker_heartbeat
    from config.celery import app

    worker_heartbeat.delay()  # eager in tests: what a worker does
    assert Heartbeat.objects.filter(name=Heartbeat.WORKER).exists()

    monkeypatch.setattr(DatabaseScheduler, "tick", lambda self, *a, **k: 5.0)  # the schedule is not under test
    scheduler = HeartbeatScheduler(app=app, lazy=True)
    assert scheduler.tick() == 5.0
    beat = Heartbeat.objects.get(name=Heartbeat.BEAT)
    assert timezone.now() - beat.at < timedelta(seconds=60)


def test_the_heartbeat_task_is_scheduled_once_by_beat():
    from config.celery import app

    entries = [e for e in app.conf.beat_schedule.values() if e["task"] == "backoffice.tasks.worker_heartbeat"]
    assert len(entries) == 1
    assert entries[0]["schedule"] <= views.WORKER_STALE_SECONDS / 2


def test_open_job_errors_are_counted_not_critical(client):
    from backoffice.joberrors import job_error_record, job_errors_acknowledge
    from backoffice.models import JobError
    from tests.factories import UserFactory

    heartbeat_record(name=Heartbeat.BEAT)
    heartbeat_record(name=Heartbeat.WORKER)
    for task in ("a.task", "b.task"):
        job_error_record(task=task, exc=RuntimeError("boom"))
    job_errors_acknowledge(error_ids=[JobError.objects.get(task="a.task").pk], by=UserFactory(is_staff=True))
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["job_errors_unacknowledged"] == 1
    assert r.json()["status"] == "ok"  # reported for alerting, never a reason to take the web process out
