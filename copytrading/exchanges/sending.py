"""Placing orders on an exchange through ccxt, from worker threads: the
network half of the submitter (copytrading/exchanges/submitter.py), which
claims the rows and records the answers. Nothing here touches the database.

One attempt at one order (``place``):
1. an order that an earlier attempt may have sent (``Job.was_sent``: the row
   was already ``sent`` when claimed, by this process or one that died) is
   first looked up by its client order id; only if the exchange does not
   have it (``OrderNotFound``) is it sent again;
2. the order is created with the client order id (ccxt's unified
   ``clientOrderId``, Binance's ``newClientOrderId``); an exchange that
   answers "duplicate client order id" has it, so it is looked up;
3. a market order whose answer is not final is read once more.

Every exchange error becomes an ``Answer``: an ``OrderOutcome`` (acknowledged,
filled, rejected with a stable code from copytrading.exchanges.errors), or a retry
(network errors, 429/418, 5xx, timeouts) with the least delay the exchange
asked for (``Retry-After``) and whether the order may have reached it
(``ambiguous``: then it is looked up before any resend, and no sooner than the
request's validity window, ``EXCHANGE_ORDER_RECV_WINDOW_SECONDS``, after it
was sent: a late-arriving copy of it is refused by the exchange by then).

Clients: ccxt clients are not thread-safe and building one costs ~7 ms and
~250 kB (binanceusdm), so each thread keeps one client per exchange and
configuration, and a lane (one account's orders) lends it its credentials
for the time of the lane, with the account's rate-limiter clock. Markets are
loaded once per process and exchange and shared by reference
(``set_markets_from_exchange``)."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import ccxt
from django.utils import timezone

from copytrading.errors import DomainError
from copytrading.exchanges import errors, redact
from copytrading.exchanges.accounts import Credentials
from copytrading.exchanges.client import exchange_client
from copytrading.exchanges.models import ExchangeOrderStatus as S
from copytrading.exchanges.outcomes import OrderOutcome, status_of

log = logging.getLogger(__name__)

# What an exchange's refusal of an order is recorded as: the first class that
# matches (most specific first). The execution log shows the code; the
# exchange's own text, scrubbed of credentials, goes to ``reject_message``.

# Failures worth another attempt: ccxt's NetworkError (timeouts, 429/418,
# 5xx, maintenance, nonce/clock) and answers it could not read (BadResponse).
RETRYABLE: tuple[type[BaseException], ...] = (ccxt.OperationFailed,)
# Of those, refusals at the exchange's edge that placed nothing for sure.
REFUSED_UNPLACED: tuple[type[BaseException], ...] = (ccxt.DDoSProtection, ccxt.RateLimitExceeded)
# Exchanges that say "duplicate client order id" with a code (as InvalidOrder).
DUPLICATE_CLIENT_ID_CODES = ("-4116", "-2010")  # Binance futures; Binance spot's "Duplicate order sent."


@dataclass(frozen=True, slots=True)
class Job:
    """What a thread needs of one claimed row (no ORM object crosses threads)."""

    pk: int
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    price: Decimal | None
    reduce_only: bool
    attempt: int  # this attempt's number (committed before sending)
    was_sent: bool  # an earlier attempt may have reached the exchange
    lookup_only: bool = False  # out of attempts: only find out whether it is there


@dataclass(frozen=True, slots=True)
class Answer:
    """One attempt's result: an ``outcome`` to record, or a retry
    (``outcome`` None) no sooner than ``retry_after`` seconds."""

    job: Job
    outcome: OrderOutcome | None
    retry_after: float = 0.0
    ambiguous: bool = False  # a create was sent and its fate is unknown
    sent_at: float = 0.0  # time.time() of the create, when ambiguous
    error: str = ""
    # For a retry: the exchange certainly has no such order (nothing was
    # sent, or it refused at its edge, and no earlier attempt's order is
    # there), so the next attempt need not look it up first.
    unplaced: bool = False


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The client settings, read once per batch on the caller's thread."""

    url_override: str
    timeout_seconds: float
    recv_window_seconds: float


@dataclass(frozen=True)
class Lane:
    """Orders of one account sent one after another on one thread."""

    exchange: str
    credentials: Credentials = field(repr=False)
    jobs: tuple[Job, ...]


# --- clients and markets -------------------------------------------------------------

_local = threading.local()
_markets_lock = threading.Lock()
_market_sources: dict[tuple[str, str], tuple[float, ccxt.Exchange]] = {}
_cooldown_lock = threading.Lock()
_cooldown_until: dict[str, float] = {}
# ccxt's rate limiter (``enableRateLimit``) spaces one client's requests by
# the endpoint's cost; its clock (``lastRestRequestTimestamp``) is kept per
# account here and lent to the thread's client with the credentials, so the
# spacing is an account's, as with a client per account (an exchange counts
# orders per account: Binance's futures order endpoint weighs 0 on the IP limit).
_last_request_lock = threading.Lock()
_last_request_ms: dict[tuple[str, str], float] = {}


def _new_client(exchange: str, config: ClientConfig) -> ccxt.Exchange:
    client = exchange_client(
        exchange,
        url_override=config.url_override,
        timeout_seconds=config.timeout_seconds,
        # fetchCurrencies: markets only (a signed call less); recvWindow: how
        # long the exchange accepts a request after its timestamp (Binance).
        options={"fetchCurrencies": False, "recvWindow": int(config.recv_window_seconds * 1000)},
    )
    client.verbose = False
    client.logger = logging.getLogger(redact.WIRE_LOGGER)
    return client


def thread_client(exchange: str, config: ClientConfig) -> ccxt.Exchange:
    """This thread's client for ``exchange`` (built once per configuration)."""
    clients: dict = getattr(_local, "clients", None) or {}
    _local.clients = clients
    key = (exchange, config)
    client = clients.get(key)
    if client is None:
        client = clients[key] = _new_client(exchange, config)
    return client


def share_markets(client: ccxt.Exchange, exchange: str, config: ClientConfig, ttl_seconds: float) -> None:
    """Give ``client`` the process's markets of ``exchange``, loading them
    once (one thread loads, the others wait) and again after ``ttl_seconds``."""
    key = (exchange, config.url_override)
    with _markets_lock:
        loaded = _market_sources.get(key)
        if loaded is None or time.monotonic() - loaded[0] > ttl_seconds:
            source = _new_client(exchange, config)
            source.load_markets()
            loaded = _market_sources[key] = (time.monotonic(), source)
    source = loaded[1]
    if client.markets is not source.markets:
        client.set_markets_from_exchange(source)


def forget_markets() -> None:
    """Drop the loaded markets (tests: each test's double is a new exchange)."""
    with _markets_lock:
        _market_sources.clear()


def _wait_cooldown(exchange: str) -> None:
    with _cooldown_lock:
        until = _cooldown_until.get(exchange, 0.0)
    delay = until - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _cool_down(exchange: str, seconds: float) -> None:
    """After a 429/418 every thread waits before its next request to that
    exchange: the limit is the server's IP's, not one account's."""
    with _cooldown_lock:
        _cooldown_until[exchange] = max(_cooldown_until.get(exchange, 0.0), time.monotonic() + seconds)


def _retry_after(client: ccxt.Exchange) -> float:
    headers = client.last_response_headers or {}
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(raw)) if raw is not None else 0.0
    except ValueError:
        return 0.0


# --- one attempt -----------------------------------------------------------------------


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def outcome_of(job: Job, order: dict, at: datetime) -> OrderOutcome:
    """What a ccxt order structure says about ``job``'s order."""
    filled = min(_decimal(order.get("filled")), job.quantity)
    average = order.get("average")
    common = {
        "client_order_id": job.client_order_id,
        "at": at,
        "exchange_order_id": str(order.get("id") or ""),
        "filled_quantity": filled,
        "average_price": _decimal(average) if average else None,
    }
    status = status_of(order.get("status"), filled)
    if status == S.REJECTED:
        message = "The exchange rejected the order."
        return OrderOutcome(status=status, reject_code=errors.REJECTED, reject_message=message, **common)
    return OrderOutcome(status=status, **common)


def _lookup(client: ccxt.Exchange, exchange: str, job: Job) -> dict | None:
    """The exchange's record of ``job``'s order, None when it has none."""
    _wait_cooldown(exchange)
    client.last_response_headers = None
    try:
        return client.fetch_order(None, job.symbol, {"clientOrderId": job.client_order_id})
    except ccxt.OrderNotFound:
        return None


def _is_duplicate(exc: ccxt.BaseError) -> bool:
    if isinstance(exc, ccxt.DuplicateOrderId):
        return True
    text = str(exc)
    return any(f'"code":{code}' in text.replace(" ", "") for code in DUPLICATE_CLIENT_ID_CODES)


def _create(client: ccxt.Exchange, exchange: str, job: Job) -> dict:
    params: dict[str, Any] = {"clientOrderId": job.client_order_id}
    if job.reduce_only:
        params["reduceOnly"] = True
    kind = "limit" if job.price is not None else job.order_type
    price = format(job.price.normalize(), "f") if job.price is not None else None
    _wait_cooldown(exchange)
    client.last_response_headers = None
    return client.create_order(job.symbol, kind, job.side, format(job.quantity.normalize(), "f"), price, params)


def place(client: ccxt.Exchange, exchange: str, job: Job) -> Answer:
    """One attempt at ``job`` (the module's docstring says which calls)."""
    created_at = 0.0  # time.time() when a create was sent in this attempt
    absent = not job.was_sent  # no earlier attempt's order can be at the exchange
    try:
        if job.was_sent or job.lookup_only:
            found = _lookup(client, exchange, job)
            if found is not None:
                return Answer(job, outcome_of(job, found, timezone.now()))
            if job.lookup_only:
                return Answer(job, failed(job, "The exchange did not answer; the order never reached it."))
            absent = True
        created_at = time.time()
        try:
            placed = _create(client, exchange, job)
        except ccxt.InvalidOrder as exc:
            if not _is_duplicate(exc):
                raise
            # The exchange has an order with this id: an earlier attempt's.
            found = _lookup(client, exchange, job)
            if found is None:
                raise ccxt.ExchangeNotAvailable("duplicate client order id, yet no such order") from exc
            return Answer(job, outcome_of(job, found, timezone.now()))
        at = timezone.now()
        if placed.get("status") not in ("closed", "canceled", "expired", "rejected") and job.price is None:
            # A market order the answer did not show filled: read once more (if
            # that fails, the acknowledgement stands; the fill is learnt later).
            with contextlib.suppress(ccxt.BaseError):
                placed = client.fetch_order(placed["id"], job.symbol) or placed
            at = timezone.now()
        return Answer(job, outcome_of(job, placed, at))
    except RETRYABLE as exc:
        retry_after = _retry_after(client)
        if isinstance(exc, REFUSED_UNPLACED):
            _cool_down(exchange, retry_after or 0.5)
        refused = isinstance(exc, REFUSED_UNPLACED)
        ambiguous = bool(created_at) and not refused
        unplaced = absent and (refused or not created_at)
        return Answer(job, None, retry_after, ambiguous, created_at, type(exc).__name__, unplaced)
    except ccxt.BaseError as exc:
        if not created_at:
            # Refused while looking the order up: its fate is still unknown.
            return Answer(job, None, 0.0, False, 0.0, type(exc).__name__)
        message = redact.scrub(str(exc))
        return Answer(
            job, rejected(job, errors.reject_code(exc, reduce_only=job.reduce_only), message), error=type(exc).__name__
        )
    except Exception as exc:  # noqa: BLE001  ccxt failing outside its errors: unknown fate, retried
        log.error("placing %s raised %s: %s", job.client_order_id, type(exc).__name__, redact.scrub(str(exc)))
        return Answer(job, None, 0.0, bool(created_at), created_at, type(exc).__name__)


def rejected(job: Job, code: str, message: str) -> OrderOutcome:
    return OrderOutcome(job.client_order_id, S.REJECTED, timezone.now(), reject_code=code, reject_message=message)


def failed(job: Job, message: str) -> OrderOutcome:
    return OrderOutcome(
        job.client_order_id, S.FAILED, timezone.now(), reject_code=errors.UNAVAILABLE, reject_message=message
    )


def run_lane(lane: Lane, config: ClientConfig, markets_ttl_seconds: float) -> list[Answer]:
    """Send a lane's orders one after another on this thread's client, which
    holds the account's credentials only for the lane."""
    creds = lane.credentials
    with redact.holding(creds.api_key, creds.secret, creds.passphrase):
        try:
            client = thread_client(lane.exchange, config)
        except DomainError as exc:  # ccxt has no such exchange: nothing can ever be sent
            return [
                Answer(job, None, 0.0, False, 0.0, exc.code)
                if job.was_sent
                else Answer(job, rejected(job, exc.code, exc.detail))
                for job in lane.jobs
            ]
        try:
            share_markets(client, lane.exchange, config, markets_ttl_seconds)
        except Exception as exc:  # noqa: BLE001  markets unreadable: nothing was sent, all retried
            log.warning("loading %s markets failed: %s", lane.exchange, redact.scrub(f"{type(exc).__name__}: {exc}"))
            error = type(exc).__name__
            return [Answer(job, None, 1.0, False, 0.0, error, unplaced=not job.was_sent) for job in lane.jobs]
        account = (lane.exchange, creds.api_key)
        with _last_request_lock:
            client.lastRestRequestTimestamp = _last_request_ms.get(account, 0)
        client.apiKey, client.secret, client.password = creds.api_key, creds.secret, creds.passphrase or None
        try:
            return [place(client, lane.exchange, job) for job in lane.jobs]
        finally:
            client.apiKey = client.secret = ""
            client.password = None
            with _last_request_lock:
                _last_request_ms[account] = max(_last_request_ms.get(account, 0), client.lastRestRequestTimestamp)


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential, jittered ±20 % (retries of many orders do not come back in step)."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.8, 1.2)
