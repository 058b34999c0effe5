"""Two watchdog workers on PostgreSQL at once: every mirror over the unrealized
daily loss limit is closed exactly once, every subscription paused, recorded
and notified exactly once."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from copytrading import ledger
from copytrading.models import Holding, Notification, Order, Position, PositionStatus
from followers.models import SubscriptionStatus
from followers.services import subscription_pause
from risk import services, watchdog
from risk.models import RiskEvent, WatchdogChunk
from tests.risk.conftest import BTC_PERP, ETH_PERP, open_mirrors, status_of

D = Decimal
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def breached_followers(world, count: int):
    portfolio = world.leader(fund="200000")
    subs = [world.follower(portfolio) for _ in range(count)]
    world.trade(portfolio, ETH_PERP, "buy", "1")
    world.trade(portfolio, BTC_PERP, "buy", "0.1")
    bystander = world.follower(portfolio)  # subscribed after the trades: no mirrors
    for sub in subs:
        services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=D("20"))
    world.price(ETH_PERP, "3150")  # every mirror loses 25 on ETH alone
    world.price(BTC_PERP, "63900")
    mirrors = [p for sub in subs for p in open_mirrors(sub)]
    assert len(mirrors) == 2 * count
    return subs, mirrors, bystander


def run_concurrently(*calls) -> list:
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def worker(i: int, call) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - surfaced to the main thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def assert_closed_exactly_once(subs, mirrors, bystander) -> None:
    for mirror in mirrors:
        # The opening order plus exactly one closing order.
        assert Order.objects.filter(position_id=mirror.pk, side="sell").count() == 1
        assert Position.objects.get(pk=mirror.pk).status == PositionStatus.CLOSED
    for sub in subs:
        assert status_of(sub) == (SubscriptionStatus.PAUSED, "risk:daily_loss_unrealized")
        events = list(RiskEvent.objects.filter(subscription_id=sub.pk).values_list("action", "closed_positions"))
        assert events == [("pause_and_close", 2)]
        assert Notification.objects.filter(user_id=sub.follower_id, kind__startswith="risk.").count() == 1
    assert status_of(bystander) == (SubscriptionStatus.ACTIVE, "")
    report = ledger.ledger_check()
    assert report.ok, report


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_on_the_same_tick_close_every_mirror_exactly_once(world):
    assert connection.vendor == "postgresql"
    subs, mirrors, bystander = breached_followers(world, 8)

    reports = run_concurrently(
        lambda: watchdog.watchdog_tick(now=NOW, chunk_size=2),
        lambda: watchdog.watchdog_tick(now=NOW, chunk_size=2),
    )

    assert sorted(r.planned for r in reports) == [False, True]  # one planner
    assert all(r.chunks for r in reports)  # and both worked on the tick
    paused = [set(r.paused) for r in reports]
    assert paused[0].isdisjoint(paused[1])
    assert paused[0] | paused[1] == {s.pk for s in subs}
    assert sum(r.closed_positions for r in reports) == len(mirrors)
    assert set(WatchdogChunk.objects.values_list("status", flat=True)) == {"done"}
    assert_closed_exactly_once(subs, mirrors, bystander)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_overlapping_ticks_still_close_every_mirror_exactly_once(world):
    """Two slots' ticks (a slow tick still running when the next starts) cover
    the same subscriptions through different chunks: the subscription row lock
    under the pause decides which acts."""
    assert connection.vendor == "postgresql"
    subs, mirrors, bystander = breached_followers(world, 8)

    reports = run_concurrently(
        lambda: watchdog.watchdog_tick(now=NOW, chunk_size=3),
        lambda: watchdog.watchdog_tick(now=NOW + timedelta(seconds=30), chunk_size=4),
    )

    assert [r.planned for r in reports] == [True, True]
    assert set(reports[0].paused).isdisjoint(reports[1].paused)
    assert sum(r.closed_positions for r in reports) == len(mirrors)
    assert_closed_exactly_once(subs, mirrors, bystander)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_overlapping_ticks_close_out_a_paused_copy_exactly_once(world):
    """Paused copies are acted on through a different claim (the hook locks
    them if still paused, the risk state is taken conditionally on what the
    tick read): still exactly once, spot holdings included."""
    assert connection.vendor == "postgresql"
    subs, mirrors, bystander = breached_followers(world, 6)
    spot = world.leader(fund="200000", mode="spot")
    spot_subs = [world.follower(spot) for _ in range(4)]
    world.trade(spot, "ETH/USDT", "buy", "1", leverage=1)
    for sub in spot_subs:
        services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=D("20"))
    world.price("ETH/USDT", "3100")  # 0.5 ETH each: -50
    for sub in subs + spot_subs:
        subscription_pause(subscription=sub)

    reports = run_concurrently(
        lambda: watchdog.watchdog_tick(now=NOW, chunk_size=3),
        lambda: watchdog.watchdog_tick(now=NOW + timedelta(seconds=30), chunk_size=4),
    )

    assert set(reports[0].paused).isdisjoint(reports[1].paused)
    assert sorted(reports[0].paused + reports[1].paused) == sorted(s.pk for s in subs + spot_subs)
    assert sum(r.closed_positions for r in reports) == len(mirrors)
    for mirror in mirrors:
        assert Order.objects.filter(position_id=mirror.pk, side="sell").count() == 1
    for sub in subs + spot_subs:
        assert status_of(sub) == (SubscriptionStatus.PAUSED, "manual")
        events = list(RiskEvent.objects.filter(subscription_id=sub.pk).values_list("action", flat=True))
        assert events == ["pause_and_close"]
        assert Notification.objects.filter(user_id=sub.follower_id, kind__startswith="risk.").count() == 1
    for sub in spot_subs:
        assert Order.objects.filter(account_id=sub.copy_account_id, side="sell").count() == 1
        assert not Holding.objects.filter(account_id=sub.copy_account_id, quantity__gt=0).exists()
    assert status_of(bystander) == (SubscriptionStatus.ACTIVE, "")
    report = ledger.ledger_check()
    assert report.ok, report
