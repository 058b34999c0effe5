"""The watchdog under the live settings: its default margin-call threshold is
the record's, and a halt does not stop it (its rules protect followers' money;
docs/decisions.md §72)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from copytrading.live import services
from followers.models import SubscriptionStatus
from risk import watchdog
from tests.risk.conftest import ETH_PERP, World, open_mirrors, status_of

pytestmark = pytest.mark.django_db
D = Decimal
NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def risk_world(django_capture_on_commit_callbacks, instruments, settings):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(django_capture_on_commit_callbacks)


@pytest.fixture
def clock():
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


def tick(clock):
    clock.shift(timedelta(seconds=30))
    return watchdog.watchdog_tick()


def margin_heavy(world):
    """1,000 in the wallet, 800 of it margin: a margin level of 125 %."""
    world.price(ETH_PERP, "3200")
    portfolio = world.leader()
    sub = world.follower(portfolio, amount="1000")
    world.trade(portfolio, ETH_PERP, "buy", "1", leverage=2)
    (mirror,) = open_mirrors(sub)
    assert mirror.margin == D("800")
    return portfolio, sub


def test_the_default_margin_call_threshold_is_the_record_s(risk_world, clock):
    _, sub = margin_heavy(risk_world)
    tick(clock)
    assert status_of(sub) == (SubscriptionStatus.ACTIVE, "")  # 125 % > 110 %
    services.update_settings(margin_call_level_pct="125")
    tick(clock)
    assert status_of(sub) == (SubscriptionStatus.PAUSED, "risk:margin_call")  # 125 % <= 125 %


def test_the_watchdog_keeps_protecting_copies_while_copying_is_halted(risk_world, clock):
    portfolio, sub = margin_heavy(risk_world)
    tick(clock)
    services.halt_all(reason="drill")
    services.halt_portfolio(portfolio.pk, reason="drill")
    risk_world.price(ETH_PERP, "2959.99")  # below 110 %
    tick(clock)
    assert status_of(sub) == (SubscriptionStatus.PAUSED, "risk:margin_call")
