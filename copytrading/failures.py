"""Failures the core isolates and carries on past, reported to whoever listens.

A propagation chunk that raises is retried in smaller parts until the
follower that makes it raise is alone (``propagation``); that follower gets a
``FAILED`` execution row and the failure is reported here. The back office
registers a reporter at start-up that keeps the job-error feed: the core
imports no app above it (docs/decisions.md).

Reporting never raises into the caller: a reporter that fails is logged and
the next one still runs. The caller reports *after* the failing work rolled
back, outside its transaction, so a reporter that writes keeps its record.
"""

import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Severities of the job-error feed (SPEC.md §9), lowest first.
LOW, MEDIUM, HIGH, CRITICAL = "low", "medium", "high", "critical"


class FailureReporter(Protocol):
    def __call__(self, *, task: str, arguments: dict[str, Any], exc: BaseException, severity: str) -> None: ...


_reporters: list[FailureReporter] = []


def register_failure_reporter(reporter: FailureReporter) -> None:
    """Have ``reporter`` called with every isolated failure. Registering twice is a no-op."""
    if reporter not in _reporters:
        _reporters.append(reporter)


def failure_reporters() -> tuple[Callable[..., None], ...]:
    return tuple(_reporters)


def failure_report(*, task: str, arguments: dict[str, Any], exc: BaseException, severity: str = HIGH) -> None:
    """Tell every reporter about ``exc`` (raised by ``task`` with ``arguments``);
    never raises."""
    for reporter in _reporters:
        try:
            reporter(task=task, arguments=arguments, exc=exc, severity=severity)
        except Exception:
            log.exception("failure reporter %r failed for %s (%r)", reporter, task, exc)
