"""``Idempotency-Key`` on money-moving POSTs, with Stripe's semantics.

- The same key with the same request (same user, method, path and body) within
  24 hours replays the first answer: its status and body, with
  ``Idempotent-Replayed: true``. Nothing runs again.
- The same key with another request: 409 ``IDEMPOTENCY_KEY_REUSED``.
- The same key while the first request is still running: 409
  ``IDEMPOTENCY_KEY_IN_USE`` (PostgreSQL: a transaction-level advisory lock on
  the user and key; SQLite serializes writing transactions anyway).
- What is stored: the answer of every request that began executing: success,
  and refusals of a well-formed request (403 wrong passcode, 404, 409 not
  active, ...). Not stored, so the same key can be retried: 400s (the input
  was refused before anything ran; fix it and retry with the same key),
  429s (transient) and every 5xx (rolled back: nothing ran).

The record is written in the same transaction as the change (the view runs
inside it; the services' own ``atomic`` blocks become savepoints), so a crash
commits both or neither. Keys are kept 24 hours; ``idempotent_requests_cleanup``
(hourly, config/celery.py) deletes older ones.
"""

import functools
import hashlib
import json
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from copytrading.api_errors import exception_handler
from copytrading.errors import Conflict, DomainError
from copytrading.models import IdempotentRequest

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX_LENGTH = IdempotentRequest._meta.get_field("key").max_length
LIFETIME = timedelta(hours=24)
SCHEMA_PARAMETER = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Makes a retry safe: the same key and request within 24 h replays the first answer "
    "(Idempotent-Replayed: true); another request with the key is 409 IDEMPOTENCY_KEY_REUSED.",
)


def request_fingerprint(request) -> str:
    """What makes two requests "the same": method, path and body."""
    data = request.data
    if hasattr(data, "lists"):  # a form body: every value of every key
        data = dict(data.lists())
    body = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def request_key(request, body_field: str | None = None) -> str:
    """The header, or (older clients of top-up/withdraw) a key in the body."""
    key = request.headers.get(HEADER, "")
    if not key and body_field and hasattr(request.data, "get"):
        value = request.data.get(body_field)
        key = value if isinstance(value, str) else ""
    if len(key) > KEY_MAX_LENGTH:
        raise DomainError(
            "INVALID_IDEMPOTENCY_KEY", f"The {HEADER} header is at most {KEY_MAX_LENGTH} characters.", field=None
        )
    return key


def _claim(user_id: int, key: str) -> None:
    """Hold the (user, key) for this transaction; a concurrent holder means
    the first request is still running."""
    if connection.vendor != "postgresql":
        return  # SQLite: IMMEDIATE transactions already run one at a time
    digest = hashlib.sha256(f"idempotency:{user_id}:{key}".encode()).digest()
    lock_id = int.from_bytes(digest[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_id])
        if not cursor.fetchone()[0]:
            raise Conflict("IDEMPOTENCY_KEY_IN_USE", "A request with this Idempotency-Key is still being processed.")


def _replay(record: IdempotentRequest, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise Conflict(
            "IDEMPOTENCY_KEY_REUSED",
            "This Idempotency-Key was used for a different request; use a new key for a new request.",
        )
    return Response(record.body, status=record.status_code, headers={REPLAYED_HEADER: "true"})


def _stored(response: Response) -> bool:
    return response.status_code < 500 and response.status_code not in (400, 429)


def answer_stored(request, body_field: str | None = None) -> bool:
    """Whether this request's Idempotency-Key already has a stored answer
    (a retry): a view whose checks run before ``idempotent`` (an exchange
    asked outside the transaction) skips them, so the retry gets the first
    answer and not a refusal of the state the first one created."""
    key = request_key(request, body_field)
    if not key or not request.user.is_authenticated:
        return False
    since = timezone.now() - LIFETIME
    return IdempotentRequest.objects.filter(user=request.user, key=key, created_at__gt=since).exists()


def idempotent(method=None, *, body_field: str | None = None):
    """Decorate a DRF view's ``post`` so it honours ``Idempotency-Key``."""

    def decorate(view_method):
        @functools.wraps(view_method)
        def wrapper(self, request, *args, **kwargs):
            key = request_key(request, body_field)
            if not key or not request.user.is_authenticated:
                return view_method(self, request, *args, **kwargs)
            fingerprint = request_fingerprint(request)
            with transaction.atomic():
                _claim(request.user.pk, key)
                record = IdempotentRequest.objects.filter(user=request.user, key=key).first()
                if record is not None and record.created_at > timezone.now() - LIFETIME:
                    return _replay(record, fingerprint)
                if record is not None:  # expired, not cleaned up yet: the key is new again
                    record.delete()
                try:
                    response = view_method(self, request, *args, **kwargs)
                except (DomainError, exceptions.APIException) as exc:
                    # A refusal is an answer: what was deliberately written
                    # before it (a counted passcode attempt) commits, the
                    # services' savepoints rolled back the rest. Anything
                    # else (a bug, the database gone) rolls everything back.
                    response = exception_handler(exc, {"view": self, "request": request})
                    if response is None:
                        raise
                if _stored(response):
                    IdempotentRequest.objects.create(
                        user=request.user,
                        key=key,
                        fingerprint=fingerprint,
                        status_code=response.status_code,
                        body=response.data,
                    )
            return response

        # Documented in the schema on every endpoint that honours it.
        return extend_schema(parameters=[SCHEMA_PARAMETER])(wrapper)

    return decorate(method) if method is not None else decorate


@transaction.atomic
def idempotent_requests_cleanup(*, older_than: timedelta = LIFETIME) -> int:
    """Delete records past their 24 hours; safe to run twice."""
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
