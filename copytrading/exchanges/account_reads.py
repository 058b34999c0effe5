"""What an exchange says about an exchange-bound account, read through ccxt
for the reconciliation (copytrading/exchanges/reconciliation.py): its
positions, its open orders, and for the positions it closed the price of the
last trade. Every ccxt failure becomes a DomainError with a stable code (the
exchange's text, which may quote a URL or a header, is only logged, scrubbed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import ccxt

from copytrading.exchanges import reconcile as rc
from copytrading.exchanges import redact
from copytrading.exchanges.accounts import ExchangeUnavailable, exchange_auth_failed, exchange_error
from copytrading.exchanges.client import exchange_client
from copytrading.models import Account

log = logging.getLogger(__name__)

# Trades read to find the last one of a symbol the exchange closed.
TRADES_LOOKED_AT = 50


@dataclass(slots=True)
class ExchangeView:
    positions: list[rc.ExchangePosition]
    open_orders: list[rc.ExchangeOpenOrder]
    # symbol → (price, where it came from) for the positions the exchange closed
    close_prices: dict[str, tuple[Decimal, str]] = field(default_factory=dict)


def _decimal(value: object) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _client(account: Account):
    from copytrading.exchanges.services import credentials_of

    linked = account.exchange_account
    credentials = credentials_of(linked)
    client = exchange_client(
        linked.exchange,
        api_key=credentials.api_key,
        secret=credentials.secret,
        password=credentials.passphrase or None,
        # Binance warns (raises) on open orders of every symbol at once: we want exactly that.
        options={"fetchCurrencies": False, "warnOnFetchOpenOrdersWithoutSymbol": False},
    )
    client.verbose = False
    client.logger = logging.getLogger(redact.WIRE_LOGGER)
    return client, credentials


def exchange_view(
    account: Account, *, closed_symbols: Callable[[list[rc.ExchangePosition]], list[str]]
) -> ExchangeView:
    """What the exchange says about ``account``'s exchange account. Raises
    DomainError (EXCHANGE_UNAVAILABLE, EXCHANGE_AUTH_FAILED, EXCHANGE_ERROR,
    EXCHANGE_SECRETS_UNREADABLE) when it cannot be read. ``closed_symbols``
    names, from the positions read, the symbols whose last trade is wanted."""
    exchange = account.exchange_account.exchange
    client, credentials = _client(account)
    with redact.holding(credentials.api_key, credentials.secret, credentials.passphrase):
        try:
            positions = []
            # A spot account has holdings, not positions (Binance's spot API has
            # no fetchPositions): its positions are none, not unreadable.
            try:
                raw_positions = client.fetch_positions()
            except ccxt.NotSupported:
                raw_positions = []
            for p in raw_positions:
                contracts = abs(_decimal(p.get("contracts")))
                if not contracts:
                    continue
                size = _decimal(p.get("contractSize")) or Decimal(1)
                side = p.get("side") or (rc.LONG if _decimal(p.get("contracts")) > 0 else rc.SHORT)
                mark = _decimal(p.get("markPrice")) or None
                positions.append(rc.ExchangePosition(p["symbol"], side, contracts * size, contracts, mark))
            open_orders = [
                rc.ExchangeOpenOrder(
                    str(o.get("clientOrderId") or ""),
                    o["symbol"],
                    str(o.get("side") or ""),
                    _decimal(o.get("amount")),
                    str(o.get("id") or ""),
                )
                for o in client.fetch_open_orders()
            ]
            view = ExchangeView(positions, open_orders)
            for symbol in closed_symbols(positions):
                trades = client.fetch_my_trades(symbol, None, TRADES_LOOKED_AT)
                if trades:
                    last = max(trades, key=lambda t: (t.get("timestamp") or 0, str(t.get("id"))))
                    view.close_prices[symbol] = (_decimal(last["price"]), f"last trade {last.get('id')}")
            return view
        except ccxt.AuthenticationError as exc:
            _log(exchange, exc)
            raise exchange_auth_failed(exchange) from None
        except ccxt.NetworkError as exc:
            _log(exchange, exc)
            raise ExchangeUnavailable(exchange) from None
        except ccxt.BaseError as exc:
            _log(exchange, exc)
            raise exchange_error(exchange) from None
        finally:
            session = getattr(client, "session", None)
            if session is not None:
                session.close()


def _log(exchange: str, exc: Exception) -> None:
    log.warning("exchange reconciliation: %s failed: %s: %s", exchange, type(exc).__name__, redact.scrub(str(exc)))
