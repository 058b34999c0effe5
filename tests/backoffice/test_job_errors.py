"""The job-error feed (issue #12, point 8): grouped upserts, Celery's
task_failure wired, fail-open, the admin's list, detail and acknowledge."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone

from backoffice import joberrors
from backoffice.joberrors import arguments_text, job_error_record, job_errors_acknowledge
from backoffice.models import JobError
from copytrading import failures, tasks
from copytrading.models import PropagationChunk
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _raise_for(subscription_id: int) -> None:
    raise KeyError(f"subscription {subscription_id} has no wallet")


def _occurrence(subscription_id: int, task: str = "copytrading.tasks.propagate_chunk") -> bool:
    try:
        _raise_for(subscription_id)
    except KeyError as exc:
        return job_error_record(task=task, exc=exc, arguments=arguments_text((subscription_id,), None))
    raise AssertionError("unreachable")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # each occurrence commits, as in a worker
def test_ten_thousand_identical_failures_are_one_row_with_their_count():
    first = timezone.now()
    for n in range(10_000):
        assert _occurrence(n)  # a different id in every message: still the same bug
    (error,) = JobError.objects.all()
    assert error.count == 10_000
    assert error.exception_class == "builtins.KeyError"
    assert error.message == "'subscription 9999 has no wallet'"  # the latest occurrence's
    assert error.arguments == "9999"
    assert "_raise_for" in error.traceback
    assert error.first_seen >= first and error.last_seen >= error.first_seen
    assert error.acknowledged_at is None


def test_the_fingerprint_is_task_exception_class_and_frames():
    _occurrence(1)
    _occurrence(2, task="fees.tasks.settle_fees")  # another task
    try:
        raise ValueError("subscription 1 has no wallet")  # another class, other frames
    except ValueError as exc:
        job_error_record(task="copytrading.tasks.propagate_chunk", exc=exc)
    try:
        _raise_for(3)  # the same class from another call path
    except KeyError as exc:
        job_error_record(task="copytrading.tasks.propagate_chunk", exc=exc)
    assert JobError.objects.count() == 4
    _occurrence(4)
    assert sorted(JobError.objects.values_list("count", flat=True)) == [1, 1, 1, 2]


def test_a_new_occurrence_reopens_an_acknowledged_error():
    staff = UserFactory(is_staff=True)
    _occurrence(1)
    error = JobError.objects.get()
    assert job_errors_acknowledge(error_ids=[error.pk], by=staff) == 1
    assert job_errors_acknowledge(error_ids=[error.pk], by=staff) == 0  # already acknowledged
    error.refresh_from_db()
    assert error.acknowledged_at is not None and error.acknowledged_by == staff
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        _occurrence(2)
    error.refresh_from_db()
    assert (error.count, error.acknowledged_at, error.acknowledged_by) == (2, None, None)
    assert error.last_seen - error.first_seen >= timedelta(hours=1)


def test_arguments_are_redacted_by_name_and_truncated():
    text = arguments_text((7, {"api_secret": "s3cr3t", "nested": {"password": "p"}}), {"token": "t", "n": 1})
    assert "s3cr3t" not in text and "'p'" not in text and "'t'" not in text
    assert text.count("[redacted]") == 3 and "n=1" in text and text.startswith("7, ")
    long = arguments_text(("x" * 5000,), None)
    assert len(long) == joberrors.MAX_ARGUMENTS and long.endswith("…")


def test_recording_never_raises_and_never_breaks_the_callers_transaction(monkeypatch, caplog):
    monkeypatch.setattr(joberrors, "_UPSERT", "INSERT INTO no_such_table VALUES (%s)")
    with transaction.atomic():
        assert _occurrence(1) is False  # logged, not raised
        # The caller's transaction is still usable: the upsert had its own savepoint.
        assert PropagationChunk.objects.count() == 0
    assert "could not record a job error" in caplog.text


def test_a_record_survives_the_rollback_of_the_failing_work():
    """The callers record after the failing work rolled back, as the
    propagation's isolation does."""
    try:
        with transaction.atomic():
            UserFactory(username="rolled-back")
            _raise_for(5)
    except KeyError as exc:
        job_error_record(task="a.task", exc=exc)
    assert JobError.objects.get().task == "a.task"
    assert not connection.needs_rollback


def test_a_failing_task_is_recorded_through_task_failure():
    """A real task raising (eager here; tests/acceptance/test_poison_follower_worker.py
    does it in a real worker): a chunk id that does not exist."""
    # Eager mode re-raises before Celery's failure handling unless told not to.
    result = tasks.propagate_chunk.apply(args=(987654,), throw=False)
    assert result.failed()
    (error,) = JobError.objects.all()
    assert error.task == "copytrading.tasks.propagate_chunk"
    assert error.exception_class.endswith("DoesNotExist")
    assert error.arguments == "987654" and error.severity == "high"
    assert "propagate_chunk" in error.traceback
    tasks.propagate_chunk.apply(args=(987655,), throw=False)
    assert JobError.objects.get().count == 2


def test_the_core_reports_through_the_registered_reporter():
    assert joberrors.on_isolated_failure in failures.failure_reporters()
    try:
        _raise_for(9)
    except KeyError as exc:
        failures.failure_report(task="copytrading.x/follower", arguments={"subscription_id": 9}, exc=exc)
    error = JobError.objects.get()
    assert (error.task, error.arguments, error.severity) == ("copytrading.x/follower", "subscription_id=9", "high")


def test_a_failing_reporter_does_not_stop_the_others(monkeypatch):
    calls = []

    def broken(**kwargs):
        raise RuntimeError("reporter down")

    monkeypatch.setattr(failures, "_reporters", [broken, lambda **kwargs: calls.append(kwargs["task"])])
    failures.failure_report(task="t", arguments={}, exc=ValueError("x"))
    assert calls == ["t"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_occurrences_make_one_row_and_lose_no_count():
    threads, per_thread = 8, 50
    barrier = threading.Barrier(threads)

    def work():
        try:
            barrier.wait()
            for n in range(per_thread):
                _occurrence(n)
        finally:
            connection.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    (error,) = JobError.objects.all()
    assert error.count == threads * per_thread


# --- the admin ----------------------------------------------------------------


@pytest.fixture
def staff_client(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    client.user = user
    return client


def _listed(response) -> list[str]:
    return sorted(e.task for e in response.context["cl"].result_list)


def test_admin_lists_filters_searches_and_shows_the_traceback(staff_client):
    _occurrence(1)
    _occurrence(2, task="fees.tasks.settle_fees")
    url = "/admin/backoffice/joberror/"
    page = staff_client.get(url)
    assert page.status_code == 200
    assert _listed(page) == ["copytrading.tasks.propagate_chunk", "fees.tasks.settle_fees"]
    assert _listed(staff_client.get(url, {"task": "fees.tasks.settle_fees", "acknowledged": "no"})) == [
        "fees.tasks.settle_fees"
    ]
    assert len(_listed(staff_client.get(url, {"exception_class": "builtins.KeyError"}))) == 2
    assert len(_listed(staff_client.get(url, {"severity": "high"}))) == 0
    assert _listed(staff_client.get(url, {"q": "settle_fees"})) == ["fees.tasks.settle_fees"]
    assert _listed(staff_client.get(url, {"acknowledged": "yes"})) == []
    error = JobError.objects.get(task="fees.tasks.settle_fees")
    detail = staff_client.get(f"{url}{error.pk}/change/")
    assert detail.status_code == 200
    assert b"Traceback (most recent call last)" in detail.content and b"_raise_for" in detail.content
    assert staff_client.post(f"{url}{error.pk}/change/", {"count": 0}).status_code == 403  # read-only
    assert staff_client.get(f"{url}add/").status_code == 403


def test_admin_acknowledge_action_goes_through_the_service(staff_client, monkeypatch):
    _occurrence(1)
    _occurrence(2, task="fees.tasks.settle_fees")
    calls = []
    real = joberrors.job_errors_acknowledge

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr("backoffice.admin.job_errors_acknowledge", spy)
    ids = list(JobError.objects.values_list("pk", flat=True))
    r = staff_client.post(
        "/admin/backoffice/joberror/", {"action": "acknowledge", "_selected_action": ids}, follow=True
    )
    assert r.status_code == 200 and b"2 job error(s) acknowledged" in r.content
    assert calls and calls[0]["by"] == staff_client.user
    assert not JobError.objects.filter(acknowledged_at__isnull=True).exists()
    assert set(JobError.objects.values_list("acknowledged_by", flat=True)) == {staff_client.user.pk}
    assert _listed(staff_client.get("/admin/backoffice/joberror/", {"acknowledged": "no"})) == []
