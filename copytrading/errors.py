"""Errors a user can cause: a stable machine code, a human sentence, the field."""

from collections.abc import Callable
from typing import Any


class DomainError(Exception):
    status = 400

    def __init__(self, code: str, detail: str, *, field: str | None = None, status: int | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field
        if status is not None:
            self.status = status


class NotFound(DomainError):
    status = 404

    def __init__(self, what: str = "object", *, field: str | None = None):
        super().__init__("NOT_FOUND", f"The {what} does not exist or is not yours.", field=field)


class Conflict(DomainError):
    status = 409


class InsufficientFunds(DomainError):
    def __init__(self, detail: str = "The balance is not sufficient.", *, field: str | None = "amount"):
        super().__init__("INSUFFICIENT_FUNDS", detail, field=field)


class ValidationErrors(DomainError):
    """Several invalid fields at once. The first one is the error's own code,
    detail and field (what clients read before "errors" existed)."""

    def __init__(self, errors: list[DomainError]):
        first = errors[0]
        super().__init__(first.code, first.detail, field=first.field, status=first.status)
        self.errors = errors


def validate_all(*checks: Callable[[], Any]) -> list[Any]:
    """Run every check and return their results; if some refuse the input
    (a 400), raise one error that lists them all, so a client sees every
    invalid field at once. Other errors (404, 409, ...) stop at once."""
    results, errors = [], []
    for check in checks:
        try:
            results.append(check())
        except ValidationErrors as exc:
            errors += exc.errors
            results.append(None)
        except DomainError as exc:
            if exc.status != 400:
                raise
            errors.append(exc)
            results.append(None)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ValidationErrors(errors)
    return results
