"""The exchange double's state: plain objects a test reads and changes directly.

Everything a route answers comes from an ``ExchangeState``; tests arrange it
(markets, marks, accounts, clock) before they point ccxt at the server and
assert on it afterwards (orders placed, leverage set, requests seen).
Decimals throughout: the double answers with strings, as Binance does.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal


def D(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def decimals_of(step: Decimal) -> int:
    """Binance's pricePrecision / quantityPrecision: places of the step."""
    return max(0, -step.normalize().as_tuple().exponent)


@dataclass
class Market:
    """One market. ``kind`` is ``"PERPETUAL"`` (USDⓈ-M futures, /fapi) or
    ``"SPOT"`` (/api/v3); ``status`` ``"TRADING"``, ``"BREAK"``, ``"SETTLING"``…"""

    symbol: str  # the exchange's id, e.g. BTCUSDT
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    mark: Decimal
    kind: str = "PERPETUAL"
    status: str = "TRADING"
    max_leverage: int = 125
    index: Decimal | None = None
    last: Decimal | None = None
    mark_time_ms: int | None = None  # None: the server's clock at the request
    funding_rate: Decimal = Decimal("0.0001")

    def __post_init__(self) -> None:
        for name in ("tick_size", "step_size", "min_qty", "max_qty", "min_notional", "mark"):
            setattr(self, name, D(getattr(self, name)))


@dataclass
class Position:
    symbol: str
    amount: Decimal = Decimal("0")  # signed: > 0 long, < 0 short (one-way mode)
    entry_price: Decimal = Decimal("0")


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT / …
    quantity: Decimal
    price: Decimal
    status: str  # NEW / FILLED / CANCELED / …
    time_in_force: str = "GTC"
    reduce_only: bool = False
    executed_qty: Decimal = Decimal("0")
    avg_price: Decimal = Decimal("0")
    time_ms: int = 0
    update_time_ms: int = 0


@dataclass
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    time_ms: int
    maker: bool = False


@dataclass
class Account:
    """An API key and what it sees. ``permissions`` are Binance's
    ``/sapi/v1/account/apiRestrictions`` flags (extend freely)."""

    api_key: str
    secret: str
    balances: dict[str, Decimal] = field(default_factory=lambda: {"USDT": Decimal("10000")})
    permissions: dict[str, bool] = field(
        default_factory=lambda: {
            "ipRestrict": False,
            "enableReading": True,
            "enableFutures": True,
            "enableSpotAndMarginTrading": False,
            "enableWithdrawals": False,
            "enableInternalTransfer": False,
            "enableMargin": False,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
            "enablePortfolioMarginTrading": False,
        }
    )
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    leverage: dict[str, int] = field(default_factory=dict)
    taker_fee: Decimal = Decimal("0.0004")
    extra: dict[str, object] = field(default_factory=dict)  # room for other modules' state


@dataclass
class Fault:
    """An injected answer. ``kind``: ``"status"`` (answer ``status`` with a
    Binance error body: 429/418 carry ``Retry-After``), ``"timeout"`` (hold the
    request without an answer for ``seconds``, then drop the connection),
    ``"latency"`` (sleep ``seconds``, then answer normally). ``path`` limits it
    to paths starting with that prefix; ``times`` None means until removed."""

    kind: str
    status: int = 500
    path: str = ""
    times: int | None = 1
    seconds: float = 0.0
    retry_after: int | None = None


# The kinds ``inject_random`` draws: a status code (int) or one of these.
RANDOM_KINDS = ("timeout", "timeout_after_accept", "latency")


@dataclass
class RandomFaults:
    """Faults drawn per request: ``rates`` maps a status code (429, 500…) or
    ``"timeout"`` / ``"timeout_after_accept"`` to its probability; a seeded
    generator makes a run repeatable (given the same request order)."""

    rates: dict[object, float]
    rng: random.Random
    path: str = ""
    seconds: float = 0.0  # how long a timeout holds the request (0: until stop())
    retry_after: int | None = None
    drawn: Counter = field(default_factory=Counter)  # kind → how many were injected

    def draw(self, path: str) -> Fault | None:
        if not path.startswith(self.path):
            return None
        roll, edge = self.rng.random(), 0.0
        for kind, rate in self.rates.items():
            edge += rate
            if roll < edge:
                self.drawn[kind] += 1
                if isinstance(kind, int):
                    return Fault("status", status=kind, path=self.path, times=None, retry_after=self.retry_after)
                return Fault(str(kind), path=self.path, times=None, seconds=self.seconds)
        return None


@dataclass
class RequestRecord:
    method: str
    path: str
    params: dict[str, str]
    api_key: str | None
    answered: int | None = None
    at: float = 0.0


class ExchangeState:
    """Markets by exchange id (perpetuals in ``markets``, spot pairs in
    ``spot_markets``: Binance uses one id for both), accounts by API key,
    faults, the request log.

    Routes run on server threads: hold ``lock`` while reading or changing the
    state from a test while the server runs (routes hold it for you)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.markets: dict[str, Market] = {}
        self.spot_markets: dict[str, Market] = {}
        self.accounts: dict[str, Account] = {}
        self.faults: list[Fault] = []
        self.random_faults: RandomFaults | None = None
        # Binance refuses a second order with a client order id it already
        # has (-4116); a test proving the caller never resends switches it off
        # so that a duplicate would show up as a second order.
        self.unique_client_order_ids = True
        # Requests being served right now, and the most there ever were: in
        # all, and per API key (what a caller's concurrency bounds must hold).
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_by_key: Counter = Counter()
        self.max_in_flight_by_key: Counter = Counter()
        self.requests: list[RequestRecord] = []
        self.clock_offset_ms = 0  # the server's clock minus the real one
        self.max_recv_window_ms = 60_000
        self.default_recv_window_ms = 5_000
        self._ids = itertools.count(1_000_001)
        # Recorded answers of other exchanges (OKX, Bybit…): (method, path) →
        # [(parameters that must match, body)], served where no route matches.
        self.recorded: dict[tuple[str, str], list[tuple[dict[str, str], object]]] = {}

    # -- arranging -----------------------------------------------------------------
    def add_market(self, market: Market) -> Market:
        with self.lock:
            self._book(market.kind == "SPOT")[market.symbol] = market
        return market

    def _book(self, spot: bool) -> dict[str, Market]:
        return self.spot_markets if spot else self.markets

    def remove_market(self, symbol: str, *, spot: bool = False) -> None:
        with self.lock:
            self._book(spot).pop(symbol, None)

    def set_mark(self, symbol: str, price: object, *, at_ms: int | None = None, spot: bool = False) -> None:
        with self.lock:
            market = self._book(spot)[symbol]
            market.mark = D(price)
            market.mark_time_ms = at_ms

    def add_account(self, api_key: str, secret: str, **fields: object) -> Account:
        account = Account(api_key=api_key, secret=secret, **fields)  # type: ignore[arg-type]
        with self.lock:
            self.accounts[api_key] = account
        return account

    def record_answer(self, path: str, body: object, *, method: str = "GET", **params: str) -> None:
        """Answer ``method path`` with ``body`` when the request carries
        ``params`` (a recorded response of an exchange the double does not model)."""
        with self.lock:
            self.recorded.setdefault((method.upper(), path), []).append((params, body))

    def inject(self, kind: str, **fields: object) -> Fault:
        fault = Fault(kind=kind, **fields)  # type: ignore[arg-type]
        with self.lock:
            self.faults.append(fault)
        return fault

    def inject_random(
        self,
        rates: dict[object, float],
        *,
        seed: int = 0,
        path: str = "",
        seconds: float = 0.0,
        retry_after: int | None = None,
    ) -> RandomFaults:
        """From now on, each request under ``path`` meets a fault with the
        given probabilities, e.g. ``{"timeout_after_accept": 0.05, 429: 0.05,
        500: 0.01}``; explicit ``inject`` faults are served first."""
        unknown = [k for k in rates if not isinstance(k, int) and k not in RANDOM_KINDS]
        if unknown or sum(rates.values()) > 1:
            raise ValueError(f"bad random fault rates: {rates!r}")
        faults = RandomFaults(dict(rates), random.Random(seed), path, seconds, retry_after)
        with self.lock:
            self.random_faults = faults
        return faults

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.random_faults = None

    # -- reading -------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def next_id(self) -> int:
        return next(self._ids)

    def take_fault(self, path: str) -> Fault | None:
        """The first live fault for ``path``, consuming one of its times."""
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
            if self.random_faults is not None:
                return self.random_faults.draw(path)
        return None

    def request_started(self, api_key: str | None) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if api_key:
                self.in_flight_by_key[api_key] += 1
                self.max_in_flight_by_key[api_key] = max(
                    self.max_in_flight_by_key[api_key], self.in_flight_by_key[api_key]
                )

    def request_ended(self, api_key: str | None) -> None:
        with self.lock:
            self.in_flight -= 1
            if api_key:
                self.in_flight_by_key[api_key] -= 1

    def client_order_ids(self) -> Counter:
        """How many orders every client order id has, over all accounts."""
        with self.lock:
            return Counter(o.client_order_id for a in self.accounts.values() for o in a.orders.values())

    def seen(self, path: str, method: str | None = None) -> list[RequestRecord]:
        with self.lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]


def default_markets() -> list[Market]:
    """A small Binance-like universe: three perpetuals and two spot pairs."""
    return [
        Market("BTCUSDT", "BTC", "USDT", "0.10", "0.001", "0.001", "1000", "100", "64000.00", max_leverage=125),
        Market("ETHUSDT", "ETH", "USDT", "0.01", "0.001", "0.001", "10000", "20", "3200.00", max_leverage=100),
        Market("SOLUSDT", "SOL", "USDT", "0.0100", "1", "1", "1000000", "5", "150.0000", max_leverage=50),
        Market("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "0.00001", "9000", "5", "64000.00", kind="SPOT"),
        Market("ETHBTC", "ETH", "BTC", "0.00001", "0.0001", "0.0001", "100000", "0.0001", "0.05", kind="SPOT"),
    ]
