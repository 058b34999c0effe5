"""1-minute candles of the marks: aggregation after each mark's commit,
late marks, retention and its purge."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from config.celery import app as celery_app
from copytrading.candles import candle_record, candles_purge
from copytrading.models import Instrument, PriceCandle
from copytrading.services import Mark, price_set
from copytrading.tasks import purge_candles

D = Decimal
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def eth(instruments):
    return Instrument.objects.get(symbol="ETH/USDT:USDT")


def mark(eth, price: str, seconds: float, capture):
    with capture(execute=True):
        price_set(instrument=Instrument.objects.get(pk=eth.pk), price=D(price), at=T0 + timedelta(seconds=seconds))


def ohlc(candle: PriceCandle) -> tuple:
    return (candle.open, candle.high, candle.low, candle.close, candle.ticks)


def test_marks_fold_into_one_candle_per_minute(eth, django_capture_on_commit_callbacks):
    for price, second in (("3200", 5), ("3250.5", 20), ("3190", 40), ("3210.123", 59.9), ("3220", 61)):
        mark(eth, price, second, django_capture_on_commit_callbacks)
    first, second = PriceCandle.objects.filter(instrument=eth).order_by("minute")
    assert (first.minute, second.minute) == (T0, T0 + timedelta(minutes=1))
    assert ohlc(first) == (D("3200"), D("3250.5"), D("3190"), D("3210.12"), 4)  # the close rounded to the tick
    assert ohlc(second) == (D("3220"), D("3220"), D("3220"), D("3220"), 1)
    assert PriceCandle.objects.exclude(instrument=eth).count() == 0


def test_a_late_mark_widens_the_range_but_never_moves_the_close_back(eth):
    def record(price, seconds):
        candle_record(Mark(eth.pk, eth.symbol, D(price), T0 + timedelta(seconds=seconds)))

    record("100", 30)
    record("104", 50)
    record("90", 10)  # arrives last, marked first: the new open and low
    record("101", 40)  # older than the close
    (candle,) = PriceCandle.objects.all()
    assert ohlc(candle) == (D("90"), D("104"), D("90"), D("104"), 4)
    assert (candle.first_at, candle.last_at) == (T0 + timedelta(seconds=10), T0 + timedelta(seconds=50))


def test_a_rolled_back_mark_makes_no_candle(eth, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        price_set(instrument=eth, price=D("3300"), at=T0)
        transaction.set_rollback(True)
    assert PriceCandle.objects.count() == 0


def test_candles_past_the_retention_are_purged_hourly(eth, settings):
    settings.CANDLE_RETENTION_DAYS = 30
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for days in (0, 29, 31, 400):
        at = now - timedelta(days=days)
        candle_record(Mark(eth.pk, eth.symbol, D("3000"), at))
    assert candles_purge(now=now) == 2
    assert sorted((now - c.minute).days for c in PriceCandle.objects.all()) == [0, 29]
    settings.CANDLE_RETENTION_DAYS = 0  # keep everything
    candle_record(Mark(eth.pk, eth.symbol, D("3000"), now - timedelta(days=1000)))
    assert candles_purge(now=now) == 0
    settings.CANDLE_RETENTION_DAYS = 30
    assert purge_candles() == 1  # the task, against the real clock
    assert PriceCandle.objects.filter(minute__lt=now - timedelta(days=30)).count() == 0
    (entry,) = [e for e in celery_app.conf.beat_schedule.values() if e["task"] == "copytrading.tasks.purge_candles"]
    assert entry["schedule"] == 3600.0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_merge_into_one_candle(instruments):
    """The feed, the staff API and the simulator may mark the same minute at
    once: the upsert merges, no writer's tick is lost, no unique violation."""
    import threading

    from django.db import connection

    eth = Instrument.objects.get(symbol="ETH/USDT:USDT")
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        try:
            barrier.wait()
            candle_record(Mark(eth.pk, eth.symbol, D(3000 + i), T0 + timedelta(seconds=i)))
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (candle,) = PriceCandle.objects.all()
    assert ohlc(candle) == (D("3000"), D("3007"), D("3000"), D("3007"), 8)
