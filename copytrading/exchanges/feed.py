"""The price feed (``manage.py feed_prices``): marks from an exchange through
ccxt, written through ``copytrading.services.price_set`` like the simulator's,
so limit orders, TP/SL and liquidations trigger the same way.

Polling: perpetuals through ``fetch_mark_prices`` where ccxt has it
(Binance's premium index), else ``fetch_tickers`` (the last price); spot
pairs through ``fetch_tickers``. One poll reads every active instrument
synced from the exchange (one request per kind). A failed poll backs off (doubling from the poll
interval up to ``FEED_MAX_BACKOFF_SECONDS``, at least the exchange's
Retry-After on 429/418) and rebuilds the client (a new HTTP session: the
reconnect). A mark beyond ``MARK_SANITY_BAND_PCT`` of the last ones is written
flagged ``jump``; a mark the exchange stamped more than ``MARK_STALE_SECONDS``
ago is not written, and after that long without any fresh mark every
instrument of the feed is flagged ``stale``: flagged marks never liquidate
(copytrading.matching).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from copytrading.errors import DomainError
from copytrading.exchanges.client import exchange_client
from copytrading.exchanges.marks import STALE, backoff_seconds, is_stale, judge_mark
from copytrading.models import Instrument, Product
from copytrading.services import instruments_flag_marks, price_set

log = logging.getLogger(__name__)

INSTRUMENTS_REFRESH_SECONDS = 60.0  # pick up what sync_instruments changed


@dataclass
class PollReport:
    written: dict[str, Decimal] = field(default_factory=dict)
    flagged: dict[str, str] = field(default_factory=dict)  # symbol → flag written with the mark
    stale: list[str] = field(default_factory=list)  # marks not written: stamped too long ago
    missing: list[str] = field(default_factory=list)  # no price in the answer
    error: str | None = None
    wait: float = 0.0  # seconds until the next poll


class PriceFeed:
    def __init__(
        self,
        exchange_id: str,
        *,
        poll_seconds: float | None = None,
        max_backoff_seconds: float | None = None,
        band_pct: Decimal | None = None,
        stale_seconds: float | None = None,
        client_factory: Callable[[str], Any] = exchange_client,
        now: Callable[[], datetime] = timezone.now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exchange_id = exchange_id
        self.poll_seconds = settings.FEED_POLL_SECONDS if poll_seconds is None else poll_seconds
        self.max_backoff = settings.FEED_MAX_BACKOFF_SECONDS if max_backoff_seconds is None else max_backoff_seconds
        self.band_pct = settings.MARK_SANITY_BAND_PCT if band_pct is None else band_pct
        self.stale_seconds = settings.MARK_STALE_SECONDS if stale_seconds is None else stale_seconds
        self._client_factory = client_factory
        self._now, self._monotonic = now, monotonic
        self.client = client_factory(exchange_id)  # raises DomainError for an unknown id
        self.failures = 0
        self.last_fresh = monotonic()  # the last poll that brought a fresh mark
        self.stale_flagged = False
        self._instruments: dict[str, int] = {}  # symbol → id
        self._spot: set[str] = set()
        self._instruments_at = float("-inf")
        self._previous: dict[str, Decimal] = {}
        self._trusted: dict[str, Decimal] = {}

    # -- one poll ------------------------------------------------------------------
    def instruments(self) -> dict[str, int]:
        if self._monotonic() - self._instruments_at >= INSTRUMENTS_REFRESH_SECONDS:
            rows = Instrument.objects.filter(exchange=self.exchange_id, is_active=True)
            self._instruments = dict(rows.values_list("symbol", "pk"))
            self._spot = set(rows.filter(product=Product.SPOT).values_list("symbol", flat=True))
            for symbol, mark, flag in rows.values_list("symbol", "mark_price", "mark_flag"):
                if mark is not None:
                    self._previous.setdefault(symbol, mark)
                    if not flag:
                        self._trusted.setdefault(symbol, mark)
            self._instruments_at = self._monotonic()
        return self._instruments

    def _fetch(self, symbols: list[str]) -> dict[str, dict]:
        """Tickers by symbol: ccxt asks one market type per call."""
        if not self.client.markets:
            self.client.load_markets()
        spot = [s for s in symbols if s in self._spot]
        contracts = [s for s in symbols if s not in self._spot]
        tickers: dict[str, dict] = {}
        if contracts:
            fetch = (
                self.client.fetch_mark_prices if self.client.has.get("fetchMarkPrices") else self.client.fetch_tickers
            )
            tickers.update(fetch(contracts))
        if spot:
            tickers.update(self.client.fetch_tickers(spot))
        return tickers

    @staticmethod
    def _price_of(ticker: dict) -> Decimal | None:
        for key in ("markPrice", "last", "close"):
            value = ticker.get(key)
            if value is not None:
                try:
                    price = Decimal(str(value))
                except InvalidOperation:
                    continue
                if price.is_finite() and price > 0:
                    return price
        return None

    def poll_once(self) -> PollReport:
        """Read every instrument's mark once and write what is fresh; on a
        failure, count it, rebuild the client and say how long to wait."""
        report = PollReport(wait=self.poll_seconds)
        instruments = self.instruments()
        if not instruments:
            log.warning("feed %s: no active instruments synced from it (run sync_instruments)", self.exchange_id)
            return report
        try:
            tickers = self._fetch(sorted(instruments))
        except ccxt.BaseError as error:
            return self._failed(report, error)
        self.failures = 0
        now = self._now()
        for symbol, instrument_id in instruments.items():
            ticker = tickers.get(symbol)
            price = self._price_of(ticker) if ticker else None
            if price is None:
                report.missing.append(symbol)
                continue
            stamp = ticker.get("timestamp")
            at = datetime.fromtimestamp(stamp / 1000, tz=UTC) if stamp else now
            if is_stale(at=at, now=now, stale_seconds=self.stale_seconds):
                report.stale.append(symbol)
                continue
            at = min(at, now)
            self._write(report, symbol, instrument_id, price, at)
        if report.written:
            self.last_fresh, self.stale_flagged = self._monotonic(), False
        self._flag_if_stale(report)
        return report

    def _write(self, report: PollReport, symbol: str, instrument_id: int, price: Decimal, at: datetime) -> None:
        flag = judge_mark(
            price=price, previous=self._previous.get(symbol), trusted=self._trusted.get(symbol), band_pct=self.band_pct
        )
        try:
            instrument = Instrument.objects.get(pk=instrument_id)
            price_set(instrument=instrument, price=price, at=at, mark_flag=flag)
        except (Instrument.DoesNotExist, DomainError) as error:
            log.warning("feed %s: mark %s for %s not written: %s", self.exchange_id, price, symbol, error)
            return
        self._previous[symbol] = price
        if not flag:
            self._trusted[symbol] = price
        else:
            report.flagged[symbol] = flag
            log.warning("feed %s: %s mark %s flagged %s", self.exchange_id, symbol, price, flag)
        report.written[symbol] = price

    def _failed(self, report: PollReport, error: ccxt.BaseError) -> PollReport:
        self.failures += 1
        retry_after = None
        if isinstance(error, ccxt.DDoSProtection):  # 429 / 418: the exchange says how long
            headers = getattr(self.client, "last_response_headers", None) or {}
            try:
                retry_after = float(headers.get("Retry-After") or headers.get("retry-after") or 0) or None
            except ValueError:
                retry_after = None
        report.error = f"{type(error).__name__}: {error}"
        report.wait = backoff_seconds(
            failures=self.failures, base=max(self.poll_seconds, 0.1), cap=self.max_backoff, retry_after=retry_after
        )
        log.warning("feed %s: poll failed (%s); retrying in %.1fs", self.exchange_id, report.error, report.wait)
        self._reconnect()
        self._flag_if_stale(report)
        return report

    def _reconnect(self) -> None:
        """A new client (and HTTP session), keeping the loaded markets."""
        markets = self.client.markets
        self.client = self._client_factory(self.exchange_id)
        if markets:
            self.client.set_markets(markets)

    def _flag_if_stale(self, report: PollReport) -> None:
        if self.stale_flagged or self._monotonic() - self.last_fresh <= self.stale_seconds:
            return
        ids = list(self._instruments.values())
        changed = instruments_flag_marks(instrument_ids=ids, mark_flag=STALE)
        self.stale_flagged = True
        # The next fresh mark is judged against the last trusted one only.
        self._previous.clear()
        log.warning(
            "feed %s: no fresh mark for %ss: %s marks flagged stale", self.exchange_id, self.stale_seconds, changed
        )

    # -- the loop ------------------------------------------------------------------
    def run(
        self, *, stop: threading.Event, max_polls: int = 0, on_poll: Callable[[PollReport], None] | None = None
    ) -> int:
        """Poll until ``stop`` is set (or ``max_polls`` polls); returns the polls made."""
        polls = 0
        while not stop.is_set():
            close_old_connections()  # a long-lived process must not keep a broken connection
            started = self._monotonic()
            try:
                report = self.poll_once()
            except DatabaseError:
                log.exception("feed %s: database error; retrying", self.exchange_id)
                report = PollReport(wait=self.poll_seconds, error="database error")
            polls += 1
            if on_poll is not None:
                on_poll(report)
            if max_polls and polls >= max_polls:
                break
            wait = report.wait if report.error else max(0.0, report.wait - (self._monotonic() - started))
            stop.wait(wait)
        return polls
