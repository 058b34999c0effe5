"""The watchdog's series: a tick's duration, its interventions by action (after commit)."""

from datetime import timedelta

import pytest

from copytrading.observability import metrics
from risk import tasks
from tests.risk.conftest import status_of
from tests.risk.test_watchdog import clock, margin_heavy_follower  # noqa: F401  (clock: the frozen-time fixture)

ETH_PERP = "ETH/USDT:USDT"


def sample(name: str, **labels) -> float:
    return metrics.registry(scrape_gauges=False).get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
def test_a_tick_is_timed_and_its_pause_counted(world, clock, django_capture_on_commit_callbacks):  # noqa: F811
    sub = margin_heavy_follower(world, clock)
    world.price(ETH_PERP, "2900")  # under the 110 % margin-call level
    ticks = sample("copytrading_watchdog_tick_seconds_count")
    pauses = sample("copytrading_watchdog_interventions_total", action="pause")
    closes = sample("copytrading_watchdog_interventions_total", action="pause_and_close")

    clock.shift(timedelta(seconds=30))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.watchdog_tick()

    assert status_of(sub)[0] == "paused"
    assert sample("copytrading_watchdog_tick_seconds_count") == ticks + 1
    assert sample("copytrading_watchdog_interventions_total", action="pause") == pauses + 1
    assert sample("copytrading_watchdog_interventions_total", action="pause_and_close") == closes
