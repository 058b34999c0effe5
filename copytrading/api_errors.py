"""DRF exception handler: every error is ``{"code", "detail", "field"}``."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from copytrading.errors import DomainError
from copytrading.outages import RETRY_AFTER_SECONDS, SERVICE_UNAVAILABLE_BODY, is_outage

log = logging.getLogger(__name__)


def _all_errors(detail, prefix: str = "") -> list[tuple[str | None, str, str]]:
    """Every (field, message, code) in DRF's nested error detail, in order."""
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            field = key if key != "non_field_errors" else None
            name = f"{prefix}.{field}" if prefix and field else (field or prefix or None)
            found += [(got or name, message, code) for got, message, code in _all_errors(value, name or "")]
        return found
    if isinstance(detail, list):
        return [error for item in detail for error in _all_errors(item, prefix)]
    code = getattr(detail, "code", "invalid") or "invalid"
    return [((prefix or None), str(detail), str(code))]


def _stable_code(code: str) -> str:
    # DRF codes are "invalid", "invalid_choice", "required", ...: each one
    # becomes INVALID or INVALID_<WHAT>, never INVALID_INVALID_<WHAT>.
    return code.upper() if code.startswith("invalid") else f"INVALID_{code.upper()}"


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body = {"code": exc.code, "detail": exc.detail, "field": exc.field}
        if exc.status == 400:
            # Every invalid field (copytrading.errors.validate_all), like DRF's.
            errors = getattr(exc, "errors", None) or [exc]
            body["errors"] = [{"field": e.field, "code": e.code, "detail": e.detail} for e in errors]
        retry_after = getattr(exc, "retry_after", None)  # e.g. portfolios.passcodes.PasscodeLocked
        if retry_after:
            body["retry_after"] = retry_after
            return Response(body, status=exc.status, headers={"Retry-After": str(retry_after)})
        return Response(body, status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        # Reading a body past DATA_UPLOAD_MAX_MEMORY_SIZE (config/body_limit.py
        # refuses most of them before they are read).
        return Response(
            {"code": "PAYLOAD_TOO_LARGE", "detail": str(exc), "field": None},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, exceptions.ValidationError):
        found = _all_errors(exc.detail) or [(None, "Invalid input.", "invalid")]
        # The first error on top (as before), and every error in "errors".
        errors = [{"field": name, "code": _stable_code(what), "detail": text} for name, text, what in found]
        first = errors[0]
        body = {"code": first["code"], "detail": first["detail"], "field": first["field"], "errors": errors}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, exceptions.APIException):
        code = exc.default_code.upper() if isinstance(exc.default_code, str) else "ERROR"
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = {}
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if getattr(exc, "auth_header", None):  # a 401 names its scheme (set by DRF's APIView)
            headers["WWW-Authenticate"] = exc.auth_header
        return Response({"code": code, "detail": str(detail), "field": None}, status=exc.status_code, headers=headers)
    if isinstance(exc, IntegrityError):
        # A constraint caught a race the service could not see coming; the
        # transaction was rolled back, so nothing was half-applied.
        log.warning("integrity error surfaced to the API: %s", exc)
        return Response(
            {"code": "CONFLICT", "detail": "The request conflicts with the current state; retry.", "field": None},
            status=status.HTTP_409_CONFLICT,
        )
    if is_outage(exc):
        # The database, the cache or the broker is unreachable or too slow
        # (pool exhausted, failover, statement_timeout): transient, retry.
        log.error("service unavailable: %r", exc)
        return service_unavailable_response()
    return None


def service_unavailable_response() -> Response:
    return Response(
        SERVICE_UNAVAILABLE_BODY,
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
