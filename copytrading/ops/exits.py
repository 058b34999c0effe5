"""What the ops commands share besides progress: their exit codes, the
broker check before a command that enqueues, and the mapping of an outage
(database or broker unreachable) to "cannot run".

Exit codes (README, "Management commands"): 0 done or nothing to do,
1 findings or refused, 2 cannot run (bad arguments, a service down)."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError

from config.celery import app as celery_app
from copytrading.outages import OUTAGE_ERRORS, is_outage

OK, FINDINGS, CANNOT_RUN = 0, 1, 2
BROKER_TIMEOUT_SECONDS = 2.0  # one try: an operator at a shell can run it again


def cannot_run(message: str) -> CommandError:
    """Exit 2: bad arguments, or a service the command needs is down."""
    return CommandError(message, returncode=CANNOT_RUN)


def broker_problem() -> str | None:
    """Why the broker cannot take a message now, or None if it can (a
    command that would enqueue asks first, so it writes nothing it cannot
    deliver). Eager Celery (tests) publishes nothing: no broker needed."""
    if celery_app.conf.task_always_eager:
        return None
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
    except (*OUTAGE_ERRORS, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@contextmanager
def cannot_run_on_outage(what: str) -> Iterator[None]:
    """An outage inside is exit 2 with a sentence, not a traceback."""
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise
        raise CommandError(f"cannot {what}: a backing service is unreachable ({exc})", returncode=CANNOT_RUN) from exc
