"""The job-error feed (SPEC.md §9): every Celery task failure and every
follower the propagation isolated becomes a ``JobError``, grouped.

- **Grouping.** One bug firing 10,000 times is one row with ``count`` 10,000:
  the fingerprint is the task, the exception class and the traceback's frames
  (file and function, not line numbers, so a deploy that moves code keeps the
  group; not the message, which carries ids). Each occurrence is one
  ``INSERT … ON CONFLICT (fingerprint) DO UPDATE SET count = count + 1``:
  atomic in the database, so concurrent workers never lose an increment or
  create a second row. A new occurrence re-opens an acknowledged error.
- **Fail-open.** Recording never raises into the caller: an error (the
  database down, say) is logged and the caller carries on.
- **Its own transaction.** Both callers record after the failing work rolled
  back: Celery sends ``task_failure`` once the task body has unwound (its
  ``transaction.atomic`` blocks are gone), and the propagation reports an
  isolated follower after that follower's part rolled back. The upsert is one
  statement in its own (autocommit) transaction there; inside a caller's
  transaction (eager mode in a test) it takes a savepoint, so a failed upsert
  never poisons the caller's transaction. No second connection is opened:
  SQLite's one writer would wait on the caller's lock.
"""

import hashlib
import logging
import re
import traceback as tb_module
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from celery.signals import task_failure
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from backoffice.models import JobError, JobErrorSeverity
from copytrading import audit
from copytrading.failures import register_failure_reporter
from copytrading.observability import metrics

log = logging.getLogger(__name__)

MAX_MESSAGE = 2000
MAX_ARGUMENTS = 1000
MAX_TRACEBACK = 20000
# Argument names whose values are never stored (a task taking an exchange key, a password).
SECRET_NAMES = re.compile(r"pass|secret|token|key|signature|auth|credential|cookie", re.IGNORECASE)
REDACTED = "[redacted]"

# Tasks whose failure leaves followers unserved or unprotected.
TASK_SEVERITY = {
    "copytrading.tasks.propagate_event": JobErrorSeverity.HIGH,
    "copytrading.tasks.propagate_chunk": JobErrorSeverity.HIGH,
    "risk.tasks.watchdog_tick": JobErrorSeverity.HIGH,
    "risk.tasks.watchdog_drain": JobErrorSeverity.HIGH,
}


def _frame_path(filename: str) -> str:
    """A frame's file, the same on every machine: relative to the project or
    to site-packages, else its name."""
    try:
        return str(Path(filename).resolve().relative_to(settings.BASE_DIR))
    except ValueError:
        pass
    _, found, tail = filename.rpartition("site-packages/")
    return tail if found else Path(filename).name


def fingerprint(task: str, exc: BaseException, tb: TracebackType | None) -> str:
    frames = [f"{_frame_path(f.filename)}:{f.name}" for f in tb_module.extract_tb(tb)]
    cls = type(exc)
    text = "\n".join([task, f"{cls.__module__}.{cls.__qualname__}", *frames])
    return hashlib.sha256(text.encode()).hexdigest()


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 3:
        return "…"
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and SECRET_NAMES.search(k) else _redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, depth + 1) for v in value]
    return value


def arguments_text(args: Iterable[Any] | None, kwargs: dict[str, Any] | None) -> str:
    """The task's arguments for staff: secrets by name redacted, truncated."""
    parts = [repr(a) for a in _redact(list(args or ()))]
    parts += [f"{k}={v!r}" for k, v in _redact(dict(kwargs or {})).items()]
    text = ", ".join(parts)
    return text if len(text) <= MAX_ARGUMENTS else text[: MAX_ARGUMENTS - 1] + "…"


def _tail(text: str, limit: int) -> str:
    # A traceback's end is where the error is.
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


_UPSERT = """
INSERT INTO {table} (fingerprint, task, exception_class, message, arguments, traceback, severity,
                     count, first_seen, last_seen, acknowledged_at, acknowledged_by_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, 1, %s, %s, NULL, NULL)
ON CONFLICT (fingerprint) DO UPDATE SET
    count = {table}.count + 1,
    last_seen = excluded.last_seen,
    message = excluded.message,
    arguments = excluded.arguments,
    traceback = excluded.traceback,
    acknowledged_at = NULL,
    acknowledged_by_id = NULL
"""


def job_error_record(
    *,
    task: str,
    exc: BaseException,
    arguments: str = "",
    severity: str = JobErrorSeverity.MEDIUM,
    tb: TracebackType | None = None,
) -> bool:
    """Count one occurrence of ``exc`` raised by ``task`` (``tb`` defaults to
    the exception's own traceback). Returns whether it was recorded; never raises."""
    try:
        tb = tb or exc.__traceback__
        cls = type(exc)
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        params = [
            fingerprint(task, exc, tb),
            task[:200],
            f"{cls.__module__}.{cls.__qualname__}"[:200],
            _tail(str(exc), MAX_MESSAGE),
            arguments,
            _tail("".join(tb_module.format_exception(cls, exc, tb)), MAX_TRACEBACK),
            severity,
            now,
            now,
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_UPSERT.format(table=connection.ops.quote_name(JobError._meta.db_table)), params)
        metrics.JOB_ERRORS.labels(task[:200], severity).inc()
        return True
    except Exception:
        log.exception("could not record a job error of %s (%r)", task, exc)
        return False


@transaction.atomic
def job_errors_acknowledge(*, error_ids: Iterable[int], by) -> int:
    """Staff saw these errors: they leave the open list until they fire again.
    One conditional update of the open ones (locked first, so each leaves
    exactly one audit entry); returns how many were open."""
    open_ids = list(
        JobError.objects.select_for_update()
        .filter(pk__in=list(error_ids), acknowledged_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    now = timezone.now()
    acknowledged = JobError.objects.filter(pk__in=open_ids).update(acknowledged_at=now, acknowledged_by=by)
    for error in JobError.objects.filter(pk__in=open_ids).order_by("pk"):
        audit.record(actor=by, action="acknowledge", target=error, changes={"acknowledged_at": (None, now)})
    return acknowledged


def open_job_errors_count() -> int:
    return JobError.objects.filter(acknowledged_at__isnull=True).count()


# --- the two sources ----------------------------------------------------------


def on_task_failure(sender=None, exception=None, args=None, kwargs=None, traceback=None, **_) -> None:
    """``celery.signals.task_failure``: any task, any worker (and eager runs)."""
    if exception is None:
        return
    task = getattr(sender, "name", None) or str(sender)
    job_error_record(
        task=task,
        exc=exception,
        arguments=arguments_text(args, kwargs),
        severity=TASK_SEVERITY.get(task, JobErrorSeverity.MEDIUM),
        tb=traceback if isinstance(traceback, TracebackType) else None,
    )


def on_isolated_failure(*, task: str, arguments: dict[str, Any], exc: BaseException, severity: str) -> None:
    """The core's failure reporter (copytrading.failures)."""
    job_error_record(task=task, exc=exc, arguments=arguments_text((), arguments), severity=severity)


def register() -> None:
    """Called once at start-up (backoffice/apps.py)."""
    task_failure.connect(on_task_failure, weak=False, dispatch_uid="backoffice.joberrors")
    register_failure_reporter(on_isolated_failure)
