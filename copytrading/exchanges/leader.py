"""Talking to a leader's exchange account through ccxt: its balance (at bind),
its trades since a cursor (the poller), its orders (the API and the webhook
on an exchange-bound portfolio). No database writes here: the callers are the
portfolio services, which decide what the answers change.

Every client comes from ``accounts.account_client`` (the one factory, the
URL override, the redacted logger), with the account's credentials held in
``redact.holding`` for the call."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt

from copytrading.exchanges import redact
from copytrading.exchanges.accounts import _close, account_client
from copytrading.exchanges.models import ExchangeAccount
from copytrading.exchanges.services import credentials_of

log = logging.getLogger(__name__)

# Trades asked per userTrades call (Binance's maximum is 1,000).
TRADES_PAGE = 1000
# The longest span one call may cover (Binance: 7 days from startTime).
TRADES_WINDOW_MS = 7 * 24 * 3600 * 1000


@contextmanager
def leader_client(account: ExchangeAccount) -> Iterator[ccxt.Exchange]:
    credentials = credentials_of(account)
    with redact.holding(credentials.api_key, credentials.secret, credentials.passphrase):
        client = account_client(account.exchange, credentials)
        try:
            yield client
        finally:
            _close(client)


def log_failure(what: str, account: ExchangeAccount, exc: BaseException) -> None:
    log.warning("%s on %s (exchange account #%s) failed: %s: %s", what, account.exchange, account.pk,
                type(exc).__name__, redact.scrub(str(exc)))  # fmt: skip


@dataclass(frozen=True, slots=True)
class ExchangeTrade:
    """One of the leader's trades as the exchange reported it (ccxt's unified
    trade): ``amount`` in the exchange's unit (contracts for a contract market)."""

    trade_id: str
    order_id: str
    symbol: str
    side: str
    price: Decimal
    amount: Decimal
    timestamp_ms: int
    fee: Decimal | None
    fee_currency: str


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def _trade(raw: dict[str, Any]) -> ExchangeTrade:
    fee = raw.get("fee") or {}
    return ExchangeTrade(
        trade_id=str(raw["id"]),
        order_id=str(raw.get("order") or ""),
        symbol=raw["symbol"],
        side=raw["side"],
        # The exchange's text, not ccxt's float: Binance sends decimal strings.
        price=_decimal((raw.get("info") or {}).get("price")) or _decimal(raw["price"]),
        amount=_decimal((raw.get("info") or {}).get("qty")) or _decimal(raw["amount"]),
        timestamp_ms=int(raw["timestamp"]),
        fee=_decimal(fee.get("cost")),
        fee_currency=str(fee.get("currency") or ""),
    )


def trades_since(
    client: ccxt.Exchange, symbol: str, since_ms: int, *, now_ms: int | None = None
) -> list[ExchangeTrade]:
    """The account's trades on ``symbol`` from ``since_ms`` (inclusive) to
    now, oldest first by (time, id). Binance answers at most 7 days from a
    start time, so the span is read in 7-day windows (after a long outage a
    window without trades must not stop the reading), each paged while the
    exchange returns full pages."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    seen: dict[str, ExchangeTrade] = {}
    start = since_ms
    while True:
        end = min(start + TRADES_WINDOW_MS, now_ms)
        cursor = start
        while True:
            raw = client.fetch_my_trades(symbol, cursor, TRADES_PAGE, {"until": end} if end < now_ms else {})
            page = [_trade(r) for r in raw]
            fresh = [t for t in page if t.trade_id not in seen]
            for trade in fresh:
                seen[trade.trade_id] = trade
            if len(page) < TRADES_PAGE or not fresh:
                break
            cursor = max(t.timestamp_ms for t in page)
        if end >= now_ms:
            break
        start = end
    return sorted(seen.values(), key=lambda t: (t.timestamp_ms, id_key(t.trade_id)))


def id_key(trade_id: str) -> tuple[int, str]:
    # Numeric ids (Binance) compare as numbers; others as text.
    return (int(trade_id), "") if trade_id.isdigit() else (0, trade_id)


def after(trade: ExchangeTrade, last_ms: int, last_id: str) -> bool:
    """Is ``trade`` past a cursor at (``last_ms``, ``last_id``)?"""
    if trade.timestamp_ms != last_ms:
        return trade.timestamp_ms > last_ms
    return not last_id or id_key(trade.trade_id) > id_key(last_id)


def leverages(client: ccxt.Exchange, symbols: list[str]) -> dict[str, int]:
    """The account's leverage per symbol where the exchange reports an open
    position (a closed one has no leverage to copy)."""
    if not symbols or not client.has.get("fetchPositions"):
        return {}
    found = {}
    for position in client.fetch_positions(symbols):
        value = position.get("leverage")
        if value:
            found[position["symbol"]] = int(Decimal(str(value)))
    return found


def quote_balance(client: ccxt.Exchange, currency: str) -> Decimal:
    """The account's total balance (wallet, not free) in ``currency``."""
    balance = client.fetch_balance()
    total = (balance.get("total") or {}).get(currency)
    return Decimal(str(total)) if total is not None else Decimal(0)


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    exchange_order_id: str
    status: str  # ccxt's: open, closed (filled), canceled, rejected, expired
    filled: Decimal
    average: Decimal | None


def order_find(client: ccxt.Exchange, *, symbol: str, client_order_id: str) -> PlacedOrder | None:
    """The exchange's order with this client order id, None when it has none."""
    try:
        raw = client.fetch_order(None, symbol, {"clientOrderId": client_order_id})
    except ccxt.OrderNotFound:
        return None
    return _placed(raw)


def _placed(raw: dict) -> PlacedOrder:
    return PlacedOrder(
        exchange_order_id=str(raw.get("id") or ""),
        status=str(raw.get("status") or "open"),
        filled=_decimal(raw.get("filled")) or Decimal(0),
        average=_decimal(raw.get("average")),
    )


def order_create(
    client: ccxt.Exchange,
    *,
    symbol: str,
    side: str,
    amount: Decimal,
    order_type: str,
    price: Decimal | None,
    client_order_id: str,
) -> PlacedOrder:
    # ccxt's unified parameter (Binance's newClientOrderId).
    params = {"clientOrderId": client_order_id}
    limit = float(price) if price is not None else None
    raw = client.create_order(symbol, order_type, side, float(amount), limit, params)
    return _placed(raw)
