"""Meeting an outage: which errors mean "a backing service is down", the one
way to dispatch work after a commit, and the count of dispatches that failed.

A committed change is never answered with a 500: after the commit the change
stands, so a failed enqueue (broker stopped or frozen) is logged and counted,
and the outbox relay or the reconciler delivers it once the broker is back.
"""

import logging
import threading
import time
from collections.abc import Callable

import kombu.exceptions
import psycopg
import redis.exceptions
from django.core.cache import cache
from django.db import transaction
from django.db.utils import InterfaceError, OperationalError
from django.http import JsonResponse

log = logging.getLogger(__name__)

# Errors that say a backing service (PostgreSQL, Redis, the broker) is unreachable
# or too slow, not that the request was wrong: the client should retry later.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,  # database down, pool exhausted, statement_timeout
    InterfaceError,  # a pooled connection the server dropped
    redis.exceptions.ConnectionError,  # includes redis' TimeoutError
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,  # broker publish after its retries
    # The bulk writer's COPY runs on the raw psycopg cursor, whose errors
    # Django does not wrap: a connection lost or a deadlock mid-COPY.
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

RETRY_AFTER_SECONDS = 5
SERVICE_UNAVAILABLE_BODY = {
    "code": "SERVICE_UNAVAILABLE",
    "detail": "The service is temporarily unavailable; retry shortly.",
    "field": None,
}


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGE_ERRORS)


def service_unavailable_json() -> JsonResponse:
    """The 503 for code outside DRF (middleware, GraphQL, plain views)."""
    response = JsonResponse(SERVICE_UNAVAILABLE_BODY, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class OutageMiddleware:
    """An outage error that escapes a view under /api/ or /graphql/ (DRF's
    handler maps its own; this catches plain Django views and anything DRF's
    handler lets through) is a JSON 503 with Retry-After, not a 500 page."""

    PREFIXES = ("/api/", "/graphql/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        if request.path.startswith(self.PREFIXES) and is_outage(exc):
            log.error("service unavailable (%s %s): %r", request.method, request.path, exc)
            return service_unavailable_json()
        return None


# What a cache backend raises when its server is down or frozen.
CACHE_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
# After a cache error the cache is skipped for this long, so a frozen Redis
# costs one socket timeout per process every few seconds, not one per call.
CACHE_BACKOFF_SECONDS = 5.0
_cache_skip_until = 0.0


def _cache_failed(action: str, key: str, exc: BaseException) -> None:
    global _cache_skip_until
    _cache_skip_until = time.monotonic() + CACHE_BACKOFF_SECONDS
    log.warning("cache unavailable (%s %s), using the database for %.0f s: %r", action, key, CACHE_BACKOFF_SECONDS, exc)


def cache_get(key: str, default=None):
    """``cache.get`` for a cache that is an optimisation: when the cache
    server is down the caller gets ``default`` and recomputes."""
    if time.monotonic() < _cache_skip_until:
        return default
    try:
        return cache.get(key, default)
    except CACHE_ERRORS as exc:
        _cache_failed("get", key, exc)
        return default


def cache_set(key: str, value, timeout: float) -> None:
    """``cache.set`` that gives up quietly (logged) when the cache is down."""
    if time.monotonic() < _cache_skip_until:
        return
    try:
        cache.set(key, value, timeout)
    except CACHE_ERRORS as exc:
        _cache_failed("set", key, exc)


class _Counter:
    """A per-process count, shown by /healthz (``dispatch_failures``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def increment(self) -> None:
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        return self._value


dispatch_failures = _Counter()

# After a failed dispatch, further dispatches in this process are left to the
# outbox relay and the reconcilers for this long: one request that records many
# events (a TP/SL batch of 100) would otherwise spend a publish timeout on each,
# far past its deadline, answering 503 for a change that committed.
BROKER_BACKOFF_SECONDS = 5.0
_dispatch_skip_until = 0.0


def dispatch_on_commit(fn: Callable[[], None], *, what: str) -> None:
    """Run ``fn`` (an enqueue) once the current transaction commits. If it
    raises, the change is committed anyway: log, count and carry on, so the
    caller answers its normal success. ``what`` names it in the log and must
    say what redelivers it (the outbox relay, the reconciler)."""

    def run() -> None:
        global _dispatch_skip_until
        if time.monotonic() < _dispatch_skip_until:
            dispatch_failures.increment()
            log.warning("post-commit dispatch deferred (%s): the broker failed moments ago", what)
            return
        try:
            fn()
        except Exception:
            _dispatch_skip_until = time.monotonic() + BROKER_BACKOFF_SECONDS
            dispatch_failures.increment()
            log.exception("post-commit dispatch failed (%s); it will be redelivered", what)

    transaction.on_commit(run)


def after_commit(fn: Callable[[], None], *, what: str) -> None:
    """Run ``fn`` (a bookkeeping write, not an enqueue) once the current
    transaction commits, or now outside one; if it raises, log and carry on.
    Nothing runs if the transaction rolls back."""

    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("after-commit %s failed", what)

    transaction.on_commit(run)
