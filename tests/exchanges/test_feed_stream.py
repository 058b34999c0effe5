"""feed_prices streaming: ccxt.pro's watch_mark_prices against the WebSocket
double, marks written through price_set, reconnect after a drop, stale flags
when the stream goes quiet."""

import threading
import time
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from copytrading.exchanges.feed import PriceFeed
from copytrading.models import Instrument, MarkFlag, Position, PositionStatus
from portfolios.services import portfolio_order_place, portfolio_position_tpsl_set
from tests.copytrading.world import ETH_PERP, World

D = Decimal
pytestmark = pytest.mark.django_db(transaction=True)  # the feed loop closes connections a test transaction holds


@pytest.fixture
def synced(settings, instruments, exchange_stream_settings):
    settings.PAPER_SPREAD_BPS = D("0")
    call_command("sync_instruments", "--exchange", "binanceusdm", stdout=StringIO())


def run_until(feed, condition, *, seconds=10.0, mode="stream"):
    """Run the feed on this thread until ``condition(report)`` holds; returns the reports."""
    stop, reports, deadline, met = threading.Event(), [], time.monotonic() + seconds, []

    def on_poll(report):
        reports.append(report)
        if condition(report):
            met.append(True)
            stop.set()
        elif time.monotonic() > deadline:
            stop.set()

    feed.run(stop=stop, on_poll=on_poll, mode=mode)
    assert met, f"not met within {seconds}s: {[(r.written, r.error) for r in reports if not r.idle][-5:]}"
    return reports


def test_streamed_marks_go_through_price_set_and_trigger_a_take_profit(
    synced, exchange_double, exchange_stream, django_capture_on_commit_callbacks
):
    world = World(None, django_capture_on_commit_callbacks)
    portfolio = world.leader()
    (opened,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10)
    position = Position.objects.get(pk=opened.payload["leader_position_id"])
    portfolio_position_tpsl_set(portfolio=portfolio, position_id=position.pk, take_profit=D("3300"))
    exchange_double.state.set_mark("ETHUSDT", "3312.347")
    feed = PriceFeed("binanceusdm", poll_seconds=0.2, band_pct=D("10"), stale_seconds=30)
    reports = run_until(feed, lambda r: ETH_PERP in r.written)
    assert ETH_PERP in reports[-1].written
    assert Instrument.objects.get(symbol=ETH_PERP).mark_price == D("3312.34")
    position.refresh_from_db()
    assert position.status == PositionStatus.CLOSED
    assert exchange_stream.subscriptions_seen == [
        ["btcusdt@markPrice@1s", "ethusdt@markPrice@1s", "solusdt@markPrice@1s"]
    ]
    assert not exchange_double.state.seen("/fapi/v1/premiumIndex")  # streamed, not polled


def test_a_dropped_stream_is_reported_backed_off_and_resubscribed(synced, exchange_double, exchange_stream):
    feed = PriceFeed("binanceusdm", poll_seconds=0.2, band_pct=D("10"), stale_seconds=30)
    state = {"dropped": False}

    def condition(report):
        if report.written and not state["dropped"]:
            state["dropped"] = True
            exchange_stream.drop_connections()
        return state["dropped"] and report.written and len(exchange_stream.subscriptions_seen) == 2

    reports = run_until(feed, condition)
    errors = [r for r in reports if r.error]
    assert errors and errors[0].error.startswith("NetworkError") and errors[0].wait == 0.2
    assert len(exchange_stream.subscriptions_seen) == 2  # subscribed again on a new connection
    assert reports[-1].written


def test_a_quiet_stream_flags_every_mark_stale_until_the_next_one(synced, exchange_double, exchange_stream):
    feed = PriceFeed("binanceusdm", poll_seconds=0.2, band_pct=D("10"), stale_seconds=0.5)
    run_until(feed, lambda r: bool(r.written))
    exchange_stream.paused = True
    reports = run_until(feed, lambda r: r.stale_flagged > 0)
    assert reports[-1].stale_flagged == 3
    assert set(Instrument.objects.filter(mark_flag=MarkFlag.STALE).values_list("symbol", flat=True)) == {
        "BTC/USDT:USDT",
        "ETH/USDT:USDT",
        "SOL/USDT:USDT",
    }
    exchange_stream.paused = False
    run_until(feed, lambda r: len(r.written) > 0 and Instrument.objects.filter(mark_flag=MarkFlag.STALE).count() == 0)
    assert Instrument.objects.filter(mark_flag=MarkFlag.STALE).count() == 0


def test_spot_pairs_are_polled_beside_the_stream(settings, exchange_stream_settings, exchange_double, exchange_stream):
    call_command("sync_instruments", "--exchange", "binance", stdout=StringIO())  # spot and perpetuals
    exchange_double.state.set_mark("ETHBTC", "0.0512", spot=True)
    feed = PriceFeed("binance", poll_seconds=0.2, band_pct=D("10"), stale_seconds=30)
    seen: set[str] = set()
    reports = run_until(feed, lambda r: seen.update(r.written) or {"ETH/BTC", "BTC/USDT", "ETH/USDT:USDT"} <= seen)
    assert not [r for r in reports if r.missing]
    assert Instrument.objects.get(symbol="ETH/BTC").mark_price == D("0.0512")
    assert exchange_double.state.seen("/api/v3/ticker/24hr")  # spot by REST
    assert exchange_stream.subscriptions_seen  # perpetuals by stream


def test_feed_prices_streams_in_auto_mode(synced, exchange_double):
    exchange_double.state.set_mark("SOLUSDT", "151.5")
    out = StringIO()
    call_command("feed_prices", "--exchange", "binanceusdm", "--polls", "12", stdout=out)  # one market per update
    assert "price feed: binanceusdm, stream" in out.getvalue(), out.getvalue()
    assert Instrument.objects.get(symbol="SOL/USDT:USDT").mark_price == D("151.5")
