"""The one table of reason codes for what an exchange did to an order the
service sent: the ``reject_code`` of an ``ExchangeOrder`` and the
``reason_code`` of the execution row it ends (``EXCHANGE_*``).

Whoever learns of a rejection (the submitter, from a ccxt exception; the
reconciler) picks the code here (``code_for_error``); the engine's applier
(copytrading.venues.exchange_fills) copies it to the execution log, and
falls back on ``code_for_status`` when an outcome carries none. The codes
are stable: clients may switch on them; the exchange's own words stay in
``reject_message`` (scrubbed)."""

from __future__ import annotations

INSUFFICIENT_FUNDS = "EXCHANGE_INSUFFICIENT_FUNDS"
INVALID_ORDER = "EXCHANGE_INVALID_ORDER"  # size, step, notional, price filters
MARKET_CLOSED = "EXCHANGE_MARKET_CLOSED"  # symbol not trading, delisted
AUTH_FAILED = "EXCHANGE_AUTH_FAILED"  # key revoked, permission removed
RATE_LIMITED = "EXCHANGE_RATE_LIMITED"  # gave up after retries on 429/418
UNAVAILABLE = "EXCHANGE_UNAVAILABLE"  # gave up after retries on timeouts and 5xx
REDUCE_ONLY_REJECTED = "EXCHANGE_REDUCE_ONLY_REJECTED"  # nothing left to reduce on the exchange
CANCELLED = "EXCHANGE_CANCELLED"  # the exchange cancelled/expired it without a fill
REJECTED = "EXCHANGE_REJECTED"  # any other refusal
FAILED = "EXCHANGE_FAILED"  # any other failure (gave up)

CODES = (
    INSUFFICIENT_FUNDS, INVALID_ORDER, MARKET_CLOSED, AUTH_FAILED, RATE_LIMITED, UNAVAILABLE,
    REDUCE_ONLY_REJECTED, CANCELLED, REJECTED, FAILED,
)  # fmt: skip

# ccxt's exception classes (by name, most specific first: ccxt's hierarchy
# puts InsufficientFunds and InvalidOrder under ExchangeError, the network
# ones under NetworkError) -> the code.
BY_CCXT_ERROR = (
    ("InsufficientFunds", INSUFFICIENT_FUNDS),
    ("OrderImmediatelyFillable", INVALID_ORDER),
    ("InvalidOrder", INVALID_ORDER),
    ("BadSymbol", MARKET_CLOSED),
    ("MarketClosed", MARKET_CLOSED),
    ("AuthenticationError", AUTH_FAILED),
    ("PermissionDenied", AUTH_FAILED),
    ("AccountSuspended", AUTH_FAILED),
    ("DDoSProtection", RATE_LIMITED),
    ("RateLimitExceeded", RATE_LIMITED),
    ("NetworkError", UNAVAILABLE),
)


def code_for_error(exc: BaseException, *, reduce_only: bool = False) -> str:
    """The stable code of a ccxt exception (by its class and bases)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    for name, code in BY_CCXT_ERROR:
        if name in names:
            if code == INVALID_ORDER and reduce_only and "reduce" in str(exc).lower():
                return REDUCE_ONLY_REJECTED
            return code
    return REJECTED if "ExchangeError" in names else FAILED


def code_for_status(status: str, given: str = "") -> str:
    """The code an execution row gets when its order ends as ``status``
    (rejected / cancelled / failed): the one the outcome carried if it is one
    of ours, else the status's own."""
    if given in CODES:
        return given
    return {"cancelled": CANCELLED, "failed": FAILED}.get(status, REJECTED)
