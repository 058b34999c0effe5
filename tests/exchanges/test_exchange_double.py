"""The exchange double and the client factory: ccxt's own code against the double."""

import time
from decimal import Decimal

import ccxt
import pytest

from copytrading.errors import DomainError
from copytrading.exchanges.client import exchange_client, override_urls
from tests.exchange_double.binance_private import fill_resting
from tests.exchange_double.fixtures import API_KEY, API_SECRET


def client(double, exchange_id="binanceusdm", **kwargs):
    kwargs.setdefault("api_key", API_KEY)
    kwargs.setdefault("secret", API_SECRET)
    kwargs.setdefault("timeout_seconds", 2)
    return exchange_client(exchange_id, url_override=double.url, **kwargs)


def test_override_rewrites_every_api_url_and_keeps_paths():
    urls = {
        "fapiPublic": "https://fapi.binance.com/fapi/v1",
        "ws": {"future": "wss://fstream.binance.com/ws"},
        "x": ["https://a.b/c"],
        "n": None,
    }
    assert override_urls(urls, "http://127.0.0.1:9") == {
        "fapiPublic": "http://127.0.0.1:9/fapi/v1",
        "ws": {"future": "ws://127.0.0.1:9/ws"},
        "x": ["http://127.0.0.1:9/c"],
        "n": None,
    }


def test_factory_bounds_and_rate_limits_every_client(settings):
    settings.EXCHANGE_URL_OVERRIDE = ""
    settings.EXCHANGE_TIMEOUT_SECONDS = 3.5
    exchange = exchange_client("bybit")
    assert exchange.enableRateLimit is True
    assert exchange.timeout == 3500
    assert exchange.urls["api"]["public"] == "https://api.{hostname}"  # no override: the real hosts


def test_unknown_exchange_is_a_domain_error():
    with pytest.raises(DomainError) as error:
        exchange_client("nosuchexchange")
    assert error.value.code == "UNKNOWN_EXCHANGE"


def test_settings_override_points_every_client_at_the_double(exchange_double, exchange_settings):
    exchange = exchange_client("binanceusdm")
    markets = exchange.load_markets()
    assert sorted(markets) == ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]
    assert exchange_double.state.seen("/fapi/v1/exchangeInfo")


def test_markets_parse_like_binance(exchange_double):
    markets = client(exchange_double).load_markets()
    btc = markets["BTC/USDT:USDT"]
    assert (btc["swap"], btc["linear"], btc["settle"]) == (True, True, "USDT")
    assert btc["precision"] == {"amount": 0.001, "price": 0.1, "base": 1e-08, "quote": 1e-08}
    assert btc["limits"]["amount"] == {"min": 0.001, "max": 1000.0}
    assert btc["limits"]["cost"]["min"] == 100.0
    spot = client(exchange_double, exchange_id="binance").load_markets()
    assert {"BTC/USDT", "ETH/BTC", "BTC/USDT:USDT"} <= set(spot)
    assert spot["ETH/BTC"]["spot"] is True


def test_marks_and_tickers(exchange_double):
    exchange_double.state.set_mark("ETHUSDT", "3210.55")
    exchange = client(exchange_double, api_key=None, secret=None)
    marks = exchange.fetch_mark_prices()
    assert Decimal(str(marks["ETH/USDT:USDT"]["markPrice"])) == Decimal("3210.55")
    assert exchange.fetch_tickers()["ETH/USDT:USDT"]["last"] == 3210.55


def test_signed_calls_balance_orders_positions_trades_leverage(exchange_double):
    state = exchange_double.state
    exchange = client(exchange_double)
    exchange.load_markets()
    assert exchange.fetch_balance()["USDT"]["total"] == 10000.0
    assert exchange.set_leverage(10, "BTC/USDT:USDT")["leverage"] == 10
    bought = exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    assert (bought["status"], bought["filled"], bought["average"]) == ("closed", 0.01, 64000.0)
    resting = exchange.create_order("BTC/USDT:USDT", "limit", "sell", 0.01, 65000)
    assert exchange.fetch_order(resting["id"], "BTC/USDT:USDT")["status"] == "open"
    assert [o["id"] for o in exchange.fetch_open_orders("BTC/USDT:USDT")] == [resting["id"]]
    assert exchange.cancel_order(resting["id"], "BTC/USDT:USDT")["status"] == "canceled"
    (position,) = exchange.fetch_positions()
    assert (position["symbol"], position["side"], position["contracts"]) == ("BTC/USDT:USDT", "long", 0.01)
    limit = exchange.create_order("BTC/USDT:USDT", "limit", "sell", 0.01, 66000)
    state.set_mark("BTCUSDT", "66000")
    assert fill_resting(state) == 1
    assert exchange.fetch_order(limit["id"], "BTC/USDT:USDT")["status"] == "closed"
    assert exchange.fetch_positions() == []
    trades = exchange.fetch_my_trades("BTC/USDT:USDT")
    assert [t["price"] for t in trades] == [64000.0, 66000.0]
    # 20 realized, less two taker fees (0.04 % of 640 and of 660)
    assert state.accounts[API_KEY].balances["USDT"] == Decimal("10000") + Decimal("20") - Decimal("0.256") - Decimal(
        "0.264"
    )


def test_order_filters_answer_binance_errors(exchange_double):
    exchange = client(exchange_double)
    exchange.load_markets()
    with pytest.raises(ccxt.InvalidOrder):
        exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.0005)  # below min_qty (ccxt rounds to the step)
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order("BTC/USDT:USDT", "market", "buy", 10)  # 640,000 notional at 20x on 10,000
    with pytest.raises(ccxt.BadRequest):
        exchange.set_leverage(200, "SOL/USDT:USDT")


def test_signatures_keys_and_recv_window_are_checked(exchange_double):
    state = exchange_double.state
    good = client(exchange_double)
    good.load_markets()
    wrong_secret = client(exchange_double, secret="not-the-secret")
    wrong_secret.markets, wrong_secret.markets_by_id = good.markets, good.markets_by_id
    with pytest.raises(ccxt.AuthenticationError):
        wrong_secret.fetch_balance()
    unknown = client(exchange_double, api_key="nobody")
    unknown.markets, unknown.markets_by_id = good.markets, good.markets_by_id
    with pytest.raises(ccxt.AuthenticationError):
        unknown.fetch_balance()
    assert [r.answered for r in state.requests[-2:]] == [400, 401]
    state.clock_offset_ms = -30_000  # our clock runs 30 s ahead of the exchange's
    with pytest.raises(ccxt.InvalidNonce):
        good.fetch_balance()
    state.clock_offset_ms = 20_000  # 20 s behind: outside ccxt's 10 s recvWindow
    with pytest.raises(ccxt.InvalidNonce):
        good.fetch_balance()
    good.options["recvWindow"] = 30_000  # a wider window is honoured
    assert good.fetch_balance()["USDT"]["total"] == 10000.0
    good.options["recvWindow"] = 70_000
    with pytest.raises(ccxt.ExchangeError):
        good.fetch_balance()


def test_rate_limit_ban_and_server_error_answers(exchange_double):
    exchange = client(exchange_double, api_key=None, secret=None)
    exchange_double.inject("status", status=429, retry_after=7, path="/fapi/v1/premiumIndex")
    with pytest.raises(ccxt.DDoSProtection):
        exchange.fetch_mark_prices()
    assert exchange.last_response_headers["Retry-After"] == "7"
    exchange_double.inject("status", status=418, path="/fapi/v1/premiumIndex")
    with pytest.raises(ccxt.DDoSProtection):
        exchange.fetch_mark_prices()
    exchange_double.inject("status", status=503)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        exchange.fetch_mark_prices()
    assert exchange.fetch_mark_prices()  # each fault answered once
    assert [r.answered for r in exchange_double.state.seen("/fapi/v1/premiumIndex")] == [429, 418, 503, 200]


def test_timeout_and_latency(exchange_double):
    exchange = client(exchange_double, api_key=None, secret=None, timeout_seconds=0.3)
    exchange_double.inject("timeout", seconds=5)
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        exchange.fetch_time()
    assert time.monotonic() - started < 2
    exchange_double.inject("latency", seconds=0.2)
    started = time.monotonic()
    assert exchange.fetch_time()
    assert time.monotonic() - started >= 0.2
