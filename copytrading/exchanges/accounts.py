"""Talking to an exchange about an account's key, through ccxt: which
credentials an exchange needs, and a probe that reads the balances and,
where the exchange reports them, the key's permissions.

Every ccxt failure becomes a DomainError with a stable code (never a 500,
never the exchange's text, which may quote a URL or a header): a refused
key is 400 ``EXCHANGE_AUTH_FAILED``; an exchange that is down, slow or
rate-limiting is 503 ``EXCHANGE_UNAVAILABLE``; anything else it answers is
502 ``EXCHANGE_ERROR``. Logs get the class and a scrubbed message."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import ccxt
from django.conf import settings

from copytrading.errors import DomainError
from copytrading.exchanges import redact
from copytrading.exchanges.client import exchange_client

log = logging.getLogger(__name__)

# The credentials an account may carry: ccxt's names → ours. An exchange that
# needs anything else (a uid, a wallet's private key...) cannot be linked yet.
SUPPORTED_CREDENTIALS = {"apiKey": "api_key", "secret": "secret", "password": "passphrase"}
# Seconds a client should wait before retrying an exchange that was unavailable.
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Credentials:
    api_key: str
    secret: str = field(repr=False)
    passphrase: str = field(default="", repr=False)

    def __repr__(self) -> str:  # never the secret, never the whole key
        return f"Credentials(api_key={self.api_key[:4]}…)"


@dataclass(frozen=True)
class Probe:
    """What the exchange told us about the key (its balances were read)."""

    permissions: dict[str, bool] | None  # None: the exchange does not report them

    @property
    def can_withdraw(self) -> bool:
        return bool(self.permissions and self.permissions.get("withdraw"))


class ExchangeUnavailable(DomainError):
    retry_after = RETRY_AFTER_SECONDS

    def __init__(self, exchange: str) -> None:
        super().__init__(
            "EXCHANGE_UNAVAILABLE",
            f"{exchange} did not answer in time or is limiting requests; nothing was changed, try again shortly.",
            status=503,
        )


def exchange_auth_failed(exchange: str) -> DomainError:
    return DomainError(
        "EXCHANGE_AUTH_FAILED",
        f"{exchange} refused this API key and secret (wrong key, secret or passphrase, "
        "an expired key, or an IP whitelist that excludes this server).",
        field="api_key",
    )


def exchange_error(exchange: str) -> DomainError:
    return DomainError("EXCHANGE_ERROR", f"{exchange} answered with an error; nothing was changed.", status=502)


def key_can_withdraw(exchange: str) -> DomainError:
    return DomainError(
        "EXCHANGE_KEY_CAN_WITHDRAW",
        f"This {exchange} API key may withdraw funds; create a key without the withdrawal permission.",
        field="api_key",
    )


@cache
def _needed(exchange: str) -> frozenset[str]:
    # An instance: the class attribute is the base class's default, not the exchange's.
    client = getattr(ccxt, exchange)()
    return frozenset(name for name, required in client.requiredCredentials.items() if required)


@cache
def supported_exchanges() -> tuple[str, ...]:
    """The ccxt exchanges an account can be linked on: an API key and secret
    (and a passphrase where needed), nothing else."""
    return tuple(
        exchange
        for exchange in ccxt.exchanges
        if {"apiKey", "secret"} <= _needed(exchange) <= SUPPORTED_CREDENTIALS.keys()
    )


def required_credentials(exchange: str) -> set[str]:
    """Our names of what ``exchange`` needs (``api_key``, ``secret``,
    ``passphrase``). Refuses an unknown exchange and one that needs more."""
    if exchange not in ccxt.exchanges:
        raise DomainError("UNKNOWN_EXCHANGE", f"{exchange!r} is not an exchange ccxt knows.", field="exchange")
    if exchange not in supported_exchanges():
        raise DomainError(
            "EXCHANGE_NOT_SUPPORTED",
            f"{exchange} needs credentials this service does not take (only an API key, secret and passphrase).",
            field="exchange",
        )
    return {SUPPORTED_CREDENTIALS[name] for name in _needed(exchange)}


def account_client(exchange: str, credentials: Credentials) -> ccxt.Exchange:
    """A client from the one factory (copytrading/exchanges/client.py: its
    URL override points tests at the exchange double), with a web request's
    timeout and a logger whose records are redacted (redact.py)."""
    client = exchange_client(
        exchange,
        api_key=credentials.api_key,
        secret=credentials.secret,
        password=credentials.passphrase or None,
        timeout_seconds=settings.EXCHANGE_ACCOUNT_TIMEOUT_SECONDS,
        # Balances need the markets, not the currencies: spares a signed call.
        options={"fetchCurrencies": False},
    )
    client.verbose = False  # verbose prints every request, headers included, to stdout
    client.logger = logging.getLogger(redact.WIRE_LOGGER)
    return client


def _binance_permissions(client: ccxt.Exchange) -> dict[str, bool]:
    # GET /sapi/v1/account/apiRestrictions (every Binance key, futures ones included).
    raw = client.sapiGetAccountApiRestrictions()
    return {
        "withdraw": bool(raw.get("enableWithdrawals")),
        "reading": bool(raw.get("enableReading")),
        "spot": bool(raw.get("enableSpotAndMarginTrading")),
        "futures": bool(raw.get("enableFutures")),
        "ip_restricted": bool(raw.get("ipRestrict")),
    }


def _okx_permissions(client: ccxt.Exchange) -> dict[str, bool]:
    # GET /api/v5/account/config: "perm" is "read_only,trade,withdraw" or a part of it.
    (config,) = client.privateGetAccountConfig()["data"]
    granted = set((config.get("perm") or "").split(","))
    return {"withdraw": "withdraw" in granted, "reading": "read_only" in granted, "trade": "trade" in granted}


# Exchanges whose keys report their permissions; a key of any other exchange
# is linked with ``permissions: null`` (docs/api.md says to make it trade-only).
PERMISSION_READERS: dict[str, Callable[[ccxt.Exchange], dict[str, bool]]] = {
    "binance": _binance_permissions,
    "binanceusdm": _binance_permissions,
    "binancecoinm": _binance_permissions,
    "okx": _okx_permissions,
}


def probe(exchange: str, credentials: Credentials) -> Probe:
    """Read the balances with ``credentials`` and the key's permissions where
    the exchange reports them. Raises the DomainErrors above."""
    with redact.holding(credentials.api_key, credentials.secret, credentials.passphrase):
        client = account_client(exchange, credentials)
        try:
            client.fetch_balance()
            reader = PERMISSION_READERS.get(exchange)
            permissions = reader(client) if reader else None
        except ccxt.AuthenticationError as exc:  # PermissionDenied and AccountSuspended too
            _log_failure(exchange, exc, logging.INFO)
            raise exchange_auth_failed(exchange) from None
        except ccxt.NetworkError as exc:  # timeouts, 429/418, 5xx, maintenance, clock skew
            _log_failure(exchange, exc, logging.WARNING)
            raise ExchangeUnavailable(exchange) from None
        except ccxt.BaseError as exc:
            _log_failure(exchange, exc, logging.WARNING)
            raise exchange_error(exchange) from None
        except Exception as exc:  # noqa: BLE001  ccxt failing outside its own errors (a secret it cannot decode, an answer it cannot parse)
            log.error(
                "exchange account probe on %s raised outside ccxt's errors:\n%s",
                exchange,
                redact.scrub("".join(traceback.format_exception(exc))),
            )
            raise exchange_error(exchange) from None
        finally:
            _close(client)
    return Probe(permissions=permissions)


def _log_failure(exchange: str, exc: Exception, level: int) -> None:
    # The exception's text may quote the request (a URL, a header): scrubbed.
    log.log(level, "exchange account probe on %s failed: %s: %s", exchange, type(exc).__name__, redact.scrub(str(exc)))


def _close(client: ccxt.Exchange) -> None:
    session = getattr(client, "session", None)
    if session is not None:
        session.close()
