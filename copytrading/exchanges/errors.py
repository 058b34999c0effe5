"""What a ccxt exception means to a user: a stable code and an HTTP status.

One table, read in order (ccxt's classes nest: ``InsufficientFunds`` and
``InvalidOrder`` are ``ExchangeError``s, ``RequestTimeout`` and
``DDoSProtection`` are ``NetworkError``s), first match wins. The exchange's
own text never reaches an answer (it can quote a URL or a header)."""

from __future__ import annotations

from dataclasses import dataclass

import ccxt

from copytrading.errors import DomainError


@dataclass(frozen=True, slots=True)
class ExchangeFailure:
    code: str
    status: int
    detail: str
    retryable: bool  # down, slow or limiting: asking again later may work


# (ccxt class, code, status, sentence, retryable)
TABLE: tuple[tuple[type[Exception], str, int, str, bool], ...] = (
    (
        ccxt.InsufficientFunds,
        "EXCHANGE_INSUFFICIENT_FUNDS",
        400,
        "The exchange account has not enough margin or balance for this order.",
        False,
    ),
    (
        ccxt.DuplicateOrderId,
        "EXCHANGE_DUPLICATE_ORDER",
        409,
        "The exchange already has an order with this client order id.",
        False,
    ),
    (ccxt.BadSymbol, "EXCHANGE_BAD_SYMBOL", 400, "The exchange does not trade this symbol.", False),
    (
        ccxt.InvalidOrder,
        "EXCHANGE_INVALID_ORDER",
        400,
        "The exchange refused the order (size, price or filters).",
        False,
    ),
    (ccxt.AccountSuspended, "EXCHANGE_ACCOUNT_SUSPENDED", 400, "The exchange has suspended this account.", False),
    (ccxt.AuthenticationError, "EXCHANGE_AUTH_FAILED", 400, "The exchange refused this account's API key.", False),
    (
        ccxt.NetworkError,
        "EXCHANGE_UNAVAILABLE",
        503,
        "The exchange did not answer in time or is limiting requests.",
        True,
    ),
    (ccxt.BadRequest, "EXCHANGE_REJECTED", 400, "The exchange refused the request.", False),
    (ccxt.BaseError, "EXCHANGE_ERROR", 502, "The exchange answered with an error.", False),
)


def exchange_failure(exc: BaseException) -> ExchangeFailure:
    """The row of ``TABLE`` for ``exc`` (anything outside ccxt's errors: EXCHANGE_ERROR)."""
    for cls, code, status, detail, retryable in TABLE:
        if isinstance(exc, cls):
            return ExchangeFailure(code, status, detail, retryable)
    return ExchangeFailure("EXCHANGE_ERROR", 502, "The exchange answered with an error.", False)


def exchange_domain_error(exc: BaseException, *, detail: str | None = None) -> DomainError:
    failure = exchange_failure(exc)
    error = DomainError(failure.code, detail or failure.detail, status=failure.status)
    if failure.retryable:
        error.retry_after = 5  # type: ignore[attr-defined]  # read by the API's error handler
    return error
