"""The one table of exchange codes: what a ccxt exception means (a stable
code, an HTTP status for an API answer, a sentence, whether asking again may
work), and the codes an order the service sent ends with (``code_for_status``).

The submitter stamps them on ``ExchangeOrder.reject_code``, the engine's
applier copies them to the execution log, the leader's API answers them.
Clients may switch on them; the exchange's own words stay in
``reject_message`` (scrubbed).

The ccxt table is read in order (ccxt's classes nest: ``InsufficientFunds`` and
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
    (ccxt.MarketClosed, "EXCHANGE_MARKET_CLOSED", 400, "The exchange's market is closed.", False),
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
    (ccxt.NotSupported, "EXCHANGE_NOT_SUPPORTED", 400, "The exchange does not support this order.", False),
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


# How an order the service sent can end besides a ccxt error (the
# applier's fallbacks when an outcome carries no code of the table).
REJECTED = "EXCHANGE_REJECTED"  # the exchange said "rejected" in the order's own status
CANCELLED = "EXCHANGE_CANCELLED"  # the exchange cancelled or expired it without a fill
FAILED = "EXCHANGE_FAILED"  # the service gave up on it
UNAVAILABLE = "EXCHANGE_UNAVAILABLE"  # gave up after retries: timeouts, 429/418, 5xx
REDUCE_ONLY_REJECTED = "EXCHANGE_REDUCE_ONLY_REJECTED"  # nothing left to reduce on the exchange
APPLY_FAILED = "EXCHANGE_APPLY_FAILED"  # the exchange's answer could not be applied (reported; reconciled)

CODES = frozenset(
    {code for _, code, _, _, _ in TABLE}
    | {"EXCHANGE_ERROR", REJECTED, CANCELLED, FAILED, REDUCE_ONLY_REJECTED, APPLY_FAILED}
)


def reject_code(exc: BaseException, *, reduce_only: bool = False) -> str:
    """The code an order refused with ``exc`` ends with."""
    code = exchange_failure(exc).code
    if code == "EXCHANGE_INVALID_ORDER" and reduce_only and "reduce" in str(exc).lower():
        return REDUCE_ONLY_REJECTED
    return code


def code_for_status(status: str, given: str = "") -> str:
    """The code an execution row gets when its order ends as ``status``
    (rejected / cancelled / failed): the one the outcome carried if it is one
    of ours, else the status's own."""
    if given in CODES:
        return given
    return {"cancelled": CANCELLED, "failed": FAILED}.get(status, REJECTED)
