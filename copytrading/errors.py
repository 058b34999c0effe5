"""Errors a user can cause: a stable machine code, a human sentence, the field."""


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
