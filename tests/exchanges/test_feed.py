"""feed_prices against the exchange double: marks written through price_set
(TP/SL, liquidations), sanity-band and stale flags, back-off and reconnect."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from backoffice.management.commands import run_stack
from copytrading.exchanges.feed import PriceFeed
from copytrading.models import Instrument, LeaderEvent, MarkFlag, Position, PositionStatus, PriceCandle
from tests.copytrading.world import ETH_PERP, World

D = Decimal


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(settings, instruments, exchange_settings, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    call_command("sync_instruments", "--exchange", "binanceusdm", stdout=StringIO())  # adopts the seeded perps
    return World(instruments, django_capture_on_commit_callbacks)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def feed(world, clock):
    return PriceFeed(
        "binanceusdm", poll_seconds=1.0, max_backoff_seconds=8.0, band_pct=D("10"), stale_seconds=30, monotonic=clock
    )


def poll(world, feed):
    last = LeaderEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    with world.capture(execute=True):
        report = feed.poll_once()
    return report, list(LeaderEvent.objects.filter(pk__gt=last).order_by("pk"))


def leader_long(world, take_profit=None, stop_loss=None):
    portfolio = world.leader()
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "1")  # 10x at 3200: margin 320, liquidated at 2880
    position = Position.objects.get(pk=opened.payload["leader_position_id"])
    if take_profit or stop_loss:
        prices = {k: v for k, v in (("take_profit", take_profit), ("stop_loss", stop_loss)) if v}
        world.tpsl(portfolio, position.pk, **prices)
    return position


def test_the_feed_writes_every_mark_through_price_set_and_a_take_profit_triggers(world, feed, exchange_double):
    position = leader_long(world, take_profit="3300")
    exchange_double.state.set_mark("ETHUSDT", "3310.004")
    exchange_double.state.set_mark("BTCUSDT", "65000.05")
    report, events = poll(world, feed)
    assert report.written == {"BTC/USDT:USDT": D("65000.05"), "ETH/USDT:USDT": D("3310.004"), "SOL/USDT:USDT": D("150")}
    assert (report.error, report.flagged, report.wait) == (None, {}, 1.0)
    eth = Instrument.objects.get(symbol=ETH_PERP)
    assert (eth.mark_price, eth.mark_flag) == (D("3310"), MarkFlag.NONE)  # rounded down to the tick
    assert Instrument.objects.get(symbol="BTC/USDT:USDT").mark_price == D("65000")
    (closed,) = events
    assert (closed.kind, closed.payload["trigger"]) == ("position_close", "take_profit")
    position.refresh_from_db()
    assert position.status == PositionStatus.CLOSED
    assert exchange_double.state.seen("/fapi/v1/premiumIndex")  # mark prices, not last trades
    # and the candles of the minute, through the same post-commit seam as every mark
    assert dict(PriceCandle.objects.values_list("instrument__symbol", "close")) == {
        "BTC/USDT:USDT": D("65000"),
        "ETH/USDT:USDT": D("3310"),
        "SOL/USDT:USDT": D("150"),
    }


def test_a_jump_beyond_the_band_is_written_flagged_and_does_not_liquidate(world, feed, exchange_double):
    position = leader_long(world)
    exchange_double.state.set_mark("ETHUSDT", "2500")  # -22 %: through the liquidation level
    report, events = poll(world, feed)
    assert report.flagged == {ETH_PERP: "jump"}
    eth = Instrument.objects.get(symbol=ETH_PERP)
    assert (eth.mark_price, eth.mark_flag, eth.mark_trusted) == (D("2500"), "jump", False)
    assert events == []
    position.refresh_from_db()
    assert position.status == PositionStatus.OPEN
    exchange_double.state.set_mark("ETHUSDT", "2510")  # the next mark confirms the move
    report, events = poll(world, feed)
    assert report.flagged == {}
    (liquidated,) = events
    assert liquidated.payload["trigger"] == "liquidation"


def test_a_flagged_mark_still_stops_losses(world, feed, exchange_double):
    leader_long(world, stop_loss="3000")
    exchange_double.state.set_mark("ETHUSDT", "2500")
    report, events = poll(world, feed)
    assert report.flagged == {ETH_PERP: "jump"}
    (closed,) = events
    assert closed.payload["trigger"] == "stop_loss"  # not a liquidation, though the loss passed the margin


def test_a_spike_and_its_return_are_told_apart(world, feed, exchange_double):
    exchange_double.state.set_mark("ETHUSDT", "4000")
    assert poll(world, feed)[0].flagged == {ETH_PERP: "jump"}
    exchange_double.state.set_mark("ETHUSDT", "3205")  # back near the last trusted mark
    assert poll(world, feed)[0].flagged == {}
    assert Instrument.objects.get(symbol=ETH_PERP).mark_flag == MarkFlag.NONE


def test_a_mark_stamped_long_ago_is_not_written(world, feed, exchange_double):
    state = exchange_double.state
    state.set_mark("ETHUSDT", "3300", at_ms=state.now_ms() - 120_000)
    report, _ = poll(world, feed)
    assert report.stale == [ETH_PERP]
    assert ETH_PERP not in report.written
    assert Instrument.objects.get(symbol=ETH_PERP).mark_price == D("3200")


def test_an_exchange_gone_for_longer_than_the_stale_window_flags_every_mark(world, feed, exchange_double, clock):
    position = leader_long(world)
    exchange_double.inject("status", status=503, times=None)
    report, _ = poll(world, feed)
    assert report.error.startswith("ExchangeNotAvailable")
    assert Instrument.objects.filter(mark_flag=MarkFlag.STALE).count() == 0  # not yet
    clock.now += 31
    poll(world, feed)
    assert set(Instrument.objects.filter(mark_flag=MarkFlag.STALE).values_list("symbol", flat=True)) == {
        "BTC/USDT:USDT",
        "ETH/USDT:USDT",
        "SOL/USDT:USDT",
    }
    # While stale, a mark written by hand (staff) through the same path clears the flag and acts:
    # the feed's flag is about the feed's marks, not a ban on the market.
    exchange_double.state.clear_faults()
    exchange_double.state.set_mark("ETHUSDT", "2870")  # within the band of the last trusted 3200? no: -10.3 %
    report, events = poll(world, feed)
    assert report.flagged == {ETH_PERP: "jump"} and events == []
    exchange_double.state.set_mark("ETHUSDT", "2860")
    report, events = poll(world, feed)
    assert report.flagged == {} and [e.payload["trigger"] for e in events] == ["liquidation"]
    position.refresh_from_db()
    assert position.status == PositionStatus.CLOSED
    assert Instrument.objects.filter(mark_flag=MarkFlag.STALE).count() == 0  # every fresh mark cleared its flag


def test_backoff_doubles_on_5xx_honours_retry_after_and_resets(world, feed, exchange_double):
    exchange_double.inject("status", status=503, times=4, path="/fapi/v1/premiumIndex")
    clients = {id(feed.client)}
    waits = []
    for _ in range(4):
        report, _ = poll(world, feed)
        waits.append(report.wait)
        clients.add(id(feed.client))
    assert waits == [1.0, 2.0, 4.0, 8.0]  # doubling, capped at 8
    assert len(clients) == 5  # a new client (and HTTP session) after every failure
    exchange_double.inject("status", status=429, retry_after=30, path="/fapi/v1/premiumIndex")
    report, _ = poll(world, feed)
    assert report.error.startswith("DDoSProtection") and report.wait == 30.0
    exchange_double.inject("status", status=418, path="/fapi/v1/premiumIndex")
    report, _ = poll(world, feed)
    assert report.error.startswith("DDoSProtection") and report.wait == 8.0  # 6th failure: the cap
    report, _ = poll(world, feed)
    assert (report.error, report.wait, feed.failures) == (None, 1.0, 0)
    assert len(report.written) == 3


@pytest.mark.slow
def test_a_hung_exchange_times_out_and_is_retried(world, feed, exchange_double, settings):
    settings.EXCHANGE_TIMEOUT_SECONDS = 0.5
    feed._reconnect()  # pick up the shorter timeout
    exchange_double.inject("timeout", seconds=10, path="/fapi/v1/premiumIndex")
    report, _ = poll(world, feed)
    assert report.error.startswith("RequestTimeout") and report.wait == 1.0
    report, _ = poll(world, feed)
    assert report.error is None and len(report.written) == 3


@pytest.mark.django_db(transaction=True)  # the loop closes connections a test transaction would hold
def test_feed_prices_command_syncs_then_polls(exchange_double, exchange_settings):
    exchange_double.state.set_mark("SOLUSDT", "151.23")
    out = StringIO()
    call_command(
        "feed_prices",
        "--exchange",
        "binanceusdm",
        "--sync",
        "--polls",
        "2",
        "--interval",
        "0",
        "--mode",
        "poll",
        stdout=out,
    )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("binanceusdm: 3 created")
    assert "price feed: binanceusdm, poll every 0.0s" in lines
    assert lines[-3:] == ["3 marks", "3 marks", "price feed stopped after 2 polls"]
    assert Instrument.objects.get(symbol="SOL/USDT:USDT").mark_price == D("151.23")
    assert len(exchange_double.state.seen("/fapi/v1/premiumIndex")) == 2


def test_run_stack_runs_the_feed_instead_of_the_simulator_when_an_exchange_is_set(settings):
    settings.MARKET_DATA_EXCHANGE = "binanceusdm"
    children = {c.name: c.argv for c in run_stack.stack_processes(port=8123)}
    assert "market" not in children
    assert children["feed"][-4:] == ["feed_prices", "--exchange", "binanceusdm", "--sync"]
    assert "feed" not in {c.name for c in run_stack.stack_processes(port=8123, market=False)}
    settings.MARKET_DATA_EXCHANGE = ""
    assert "simulate_market" in {c.name: c.argv for c in run_stack.stack_processes(port=8123)}["market"][-1]
