"""A Celery task's log context, through Celery's signals (connected by config/celery.py).

Before a task runs its context is cleared and bound anew: the task's id and
name, the request id of the web request that published it (a message header),
and the ids among its arguments that say what it works on (event, chunk,
subscription, portfolio, watchdog tick). A task run eagerly (tests, the demo's
inline mode) runs inside its caller's context: that context is kept and put
back as it was afterwards. No Django here (imported before Django is set up).
"""

from __future__ import annotations

import inspect
import os
from functools import lru_cache
from typing import Any

import structlog
from celery import signals

from copytrading.observability.logging import TASK_CONTEXT_KEYS

HEADER = "request_id"
# Eager runs: the caller's context, by task id, to restore after the task.
_callers: dict[str, dict[str, Any]] = {}


@lru_cache(maxsize=256)
def _parameters(task_name: str, run) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(run).parameters)
    except (TypeError, ValueError):
        return ()


def task_context(task, args, kwargs) -> dict[str, Any]:
    """The ids worth binding from a task's arguments."""
    named = dict(zip(_parameters(task.name, task.run), args or (), strict=False))
    named.update(kwargs or {})
    return {key: named[key] for key in TASK_CONTEXT_KEYS if isinstance(named.get(key), int | str)}


def on_before_publish(headers=None, **_) -> None:
    if headers is None:
        return
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id is not None:
        headers.setdefault(HEADER, request_id)


def on_prerun(task_id=None, task=None, args=None, kwargs=None, **_) -> None:
    if task is None:
        return
    request = task.request
    if getattr(request, "is_eager", False):
        _callers[task_id] = structlog.contextvars.get_contextvars()
    else:
        structlog.contextvars.clear_contextvars()
        request_id = getattr(request, HEADER, None) or (request.headers or {}).get(HEADER)
        if request_id:
            structlog.contextvars.bind_contextvars(request_id=request_id)
    structlog.contextvars.bind_contextvars(task_id=task_id, task=task.name, **task_context(task, args, kwargs))


def on_postrun(task_id=None, **_) -> None:
    structlog.contextvars.clear_contextvars()
    caller = _callers.pop(task_id, None)
    if caller:
        structlog.contextvars.bind_contextvars(**caller)


def on_process_shutdown(**_) -> None:
    from copytrading.observability.metrics import process_exited

    process_exited(os.getpid())


def connect() -> None:
    signals.before_task_publish.connect(on_before_publish, weak=False, dispatch_uid="observability.publish")
    signals.task_prerun.connect(on_prerun, weak=False, dispatch_uid="observability.prerun")
    signals.task_postrun.connect(on_postrun, weak=False, dispatch_uid="observability.postrun")
    signals.worker_process_shutdown.connect(on_process_shutdown, weak=False, dispatch_uid="observability.exit")
