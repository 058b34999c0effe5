"""The price feed (``manage.py feed_prices``): marks from an exchange through
ccxt, written through ``copytrading.services.price_set`` like the simulator's,
so limit orders, TP/SL and liquidations trigger the same way.

Streaming (``FEED_MODE`` ``auto`` where ccxt.pro can, or ``stream``): the
perpetuals' marks through ccxt.pro's ``watch_mark_prices`` (else
``watch_tickers``) on a thread of their own, reconnecting with back-off when
the stream drops; spot pairs are polled beside it. Polling (``poll``, or an
exchange ccxt.pro cannot stream): perpetuals through ``fetch_mark_prices``
where ccxt has it (Binance's premium index), else ``fetch_tickers`` (the last
price); spot pairs through ``fetch_tickers``. One poll reads every active
instrument synced from the exchange (one request per kind). A failed poll backs off (doubling from the poll
interval up to ``FEED_MAX_BACKOFF_SECONDS``, at least the exchange's
Retry-After on 429/418) and rebuilds the client (a new HTTP session: the
reconnect). A mark beyond ``MARK_SANITY_BAND_PCT`` of the last ones is written
flagged ``jump``; a mark the exchange stamped more than ``MARK_STALE_SECONDS``
ago is not written, and after that long without any fresh mark every
instrument of the feed is flagged ``stale``: flagged marks never liquidate
(copytrading.matching).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection
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


def _seen_key(ticker: dict) -> tuple:
    return (ticker.get("timestamp"), ticker.get("markPrice"), ticker.get("last"))


def pro_client(exchange_id: str) -> Any:
    """A ccxt.pro (WebSocket) client from the one factory."""
    return exchange_client(exchange_id, pro=True)


@dataclass
class PollReport:
    written: dict[str, Decimal] = field(default_factory=dict)
    flagged: dict[str, str] = field(default_factory=dict)  # symbol → flag written with the mark
    stale: list[str] = field(default_factory=list)  # marks not written: stamped too long ago
    missing: list[str] = field(default_factory=list)  # no price in the answer
    error: str | None = None
    wait: float = 0.0  # seconds until the next poll
    idle: bool = False  # a stream without news (not counted as a report)
    stale_flagged: int = 0  # instruments this report flagged stale


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
        pro_factory: Callable[[str], Any] = pro_client,
        now: Callable[[], datetime] = timezone.now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exchange_id = exchange_id
        self.poll_seconds = settings.FEED_POLL_SECONDS if poll_seconds is None else poll_seconds
        self.max_backoff = settings.FEED_MAX_BACKOFF_SECONDS if max_backoff_seconds is None else max_backoff_seconds
        self.band_pct = settings.MARK_SANITY_BAND_PCT if band_pct is None else band_pct
        self.stale_seconds = settings.MARK_STALE_SECONDS if stale_seconds is None else stale_seconds
        self._client_factory = client_factory
        self._pro_factory = pro_factory
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

    def poll_once(self, *, spot_only: bool = False) -> PollReport:
        """Read every instrument's mark once (``spot_only``: the spot pairs, which
        a stream does not carry) and write what is fresh; on a failure, count
        it, rebuild the client and say how long to wait."""
        report = PollReport(wait=self.poll_seconds)
        instruments = self.instruments()
        wanted = sorted(s for s in instruments if not spot_only or s in self._spot)
        if not wanted:
            if not spot_only:
                log.warning("feed %s: no active instruments synced from it (run sync_instruments)", self.exchange_id)
            return report
        try:
            tickers = self._fetch(wanted)
        except ccxt.BaseError as error:
            return self._failed(report, error)
        self.failures = 0
        return self.apply(tickers, report, expected=wanted)

    def apply(
        self, tickers: dict[str, dict], report: PollReport | None = None, *, expected: Collection[str] = ()
    ) -> PollReport:
        """Write the fresh marks among ``tickers`` (ccxt tickers by symbol); an
        ``expected`` symbol without a price is reported missing (a poll answers
        all it was asked; a stream update carries only some)."""
        report = report or PollReport(wait=self.poll_seconds)
        instruments = self.instruments()
        now = self._now()
        for symbol, instrument_id in instruments.items():
            ticker = tickers.get(symbol)
            price = self._price_of(ticker) if ticker else None
            if price is None:
                if symbol in expected:
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
        report.stale_flagged = changed
        self.stale_flagged = True
        # The next fresh mark is judged against the last trusted one only.
        self._previous.clear()
        log.warning(
            "feed %s: no fresh mark for %ss: %s marks flagged stale", self.exchange_id, self.stale_seconds, changed
        )

    # -- the loops ------------------------------------------------------------------
    def streams(self) -> bool:
        """Whether ccxt.pro can stream this exchange's marks (``FEED_MODE=auto``)."""
        try:
            client = self._pro_factory(self.exchange_id)
        except (DomainError, AttributeError, ImportError):
            return False
        has = client.has
        return bool(has.get("watchMarkPrices") or has.get("watchTickers"))

    def run(
        self,
        *,
        stop: threading.Event,
        max_polls: int = 0,
        on_poll: Callable[[PollReport], None] | None = None,
        mode: str | None = None,
    ) -> int:
        """Poll or stream until ``stop`` is set (or ``max_polls`` reports);
        returns the reports made. ``mode``: ``poll``, ``stream`` or ``auto``
        (``FEED_MODE``): stream where ccxt.pro can."""
        mode = mode or settings.FEED_MODE
        if mode == "stream" or (mode == "auto" and self.streams()):
            return self._run_stream(stop=stop, max_polls=max_polls, on_poll=on_poll)
        return self._run_poll(stop=stop, max_polls=max_polls, on_poll=on_poll)

    def _run_poll(self, *, stop: threading.Event, max_polls: int, on_poll) -> int:
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

    def _run_stream(self, *, stop: threading.Event, max_polls: int, on_poll) -> int:
        """ccxt.pro watches the perpetuals' marks on a thread of its own (an
        asyncio loop); this thread writes them (the ORM stays synchronous) and
        polls the spot pairs, which the mark stream does not carry."""
        self.instruments()
        contracts = sorted(s for s in self._instruments if s not in self._spot)
        updates: queue.Queue = queue.Queue(maxsize=1000)
        done = threading.Event()
        watcher = threading.Thread(
            target=lambda: asyncio.run(self._watch(contracts, updates, done)), name="feed-stream", daemon=True
        )
        if contracts:
            watcher.start()
        reports, next_spot_poll = 0, 0.0
        try:
            while not stop.is_set():
                close_old_connections()
                report: PollReport | None = None
                # As when polling: a database error is logged and retried, never the end of the feed.
                try:
                    if self._spot and self._monotonic() >= next_spot_poll:
                        report = self.poll_once(spot_only=True)
                        next_spot_poll = self._monotonic() + report.wait
                    else:
                        try:
                            item = updates.get(timeout=min(0.5, self.poll_seconds or 0.5))
                        except queue.Empty:  # a quiet stream: only the stale watch runs
                            idle = PollReport(idle=True)
                            self._flag_if_stale(idle)
                            if on_poll is not None:
                                on_poll(idle)
                            continue
                        if item[0] == "tickers":
                            report = self.apply(item[1])
                        else:
                            report = PollReport(error=item[1], wait=item[2])
                            self._flag_if_stale(report)
                except DatabaseError:
                    log.exception("feed %s: database error; retrying", self.exchange_id)
                    report = PollReport(wait=self.poll_seconds, error="database error")
                    stop.wait(self.poll_seconds)
                reports += 1
                if on_poll is not None:
                    on_poll(report)
                if max_polls and reports >= max_polls:
                    break
        finally:
            done.set()
            if watcher.is_alive():
                watcher.join(timeout=10)
        return reports

    async def _watch(self, symbols: list[str], updates: queue.Queue, done: threading.Event) -> None:
        """Watch marks until ``done``; on a dropped or failed stream, report it,
        back off (as polls do) and reconnect with a new client."""
        failures = 0
        sent: dict[str, tuple] = {}
        while not done.is_set():
            client = self._pro_factory(self.exchange_id)
            watch = client.watch_mark_prices if client.has.get("watchMarkPrices") else client.watch_tickers
            pending: asyncio.Future | None = None
            try:
                while not done.is_set():
                    if pending is None:
                        pending = asyncio.ensure_future(watch(symbols))
                    finished, _ = await asyncio.wait({pending}, timeout=0.25)
                    if not finished:
                        continue  # nothing yet: look at ``done`` again
                    tickers, pending = pending.result(), None
                    failures = 0
                    # A watch returns what resolved it; updates of other markets that arrived
                    # meanwhile are only in ccxt's ticker cache: send every changed one.
                    latest = {**{s: client.tickers[s] for s in symbols if s in client.tickers}, **tickers}
                    changed = {s: t for s, t in latest.items() if sent.get(s) != _seen_key(t)}
                    sent.update({s: _seen_key(t) for s, t in changed.items()})
                    if changed:
                        updates.put(("tickers", changed))
            except (ccxt.BaseError, OSError) as error:
                failures += 1
                wait = backoff_seconds(failures=failures, base=max(self.poll_seconds, 0.1), cap=self.max_backoff)
                log.warning(
                    "feed %s: stream failed (%s: %s); reconnecting in %.1fs",
                    self.exchange_id,
                    type(error).__name__,
                    error,
                    wait,
                )
                updates.put(("error", f"{type(error).__name__}: {error}", wait))
                deadline = time.monotonic() + wait
                while not done.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            finally:
                if pending is not None:
                    pending.cancel()
                await client.close()
