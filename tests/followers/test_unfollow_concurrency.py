"""Unfollow racing itself, the watchdog and a follower's own close on
PostgreSQL: every mirror is closed once and the wallet returned once."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from copytrading.errors import DomainError
from copytrading.ledger import ledger_check
from copytrading.models import Order, Position, PositionStatus, Transfer, TransferKind
from followers.models import SubscriptionStatus
from followers.services import subscription_position_close, subscription_unfollow
from risk import services as risk_services
from risk import watchdog
from tests.copytrading.world import BTC_PERP, ETH_PERP, mirrors_of, wallet
from tests.followers.conftest import main_wallet
from tests.risk.test_watchdog_concurrency import run_concurrently

D = Decimal
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def copies_with_mirrors(world, count: int):
    portfolio = world.leader(fund="200000")
    subs = [world.subscribe(portfolio) for _ in range(count)]
    world.trade(portfolio, ETH_PERP, "buy", "2")
    world.trade(portfolio, BTC_PERP, "buy", "0.1")
    return portfolio, subs


def assert_ended_once(sub) -> None:
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ENDED
    for mirror in mirrors_of(sub):
        assert mirror.status == PositionStatus.CLOSED
        assert Order.objects.filter(position_id=mirror.pk, side="sell").count() == 1
    returns = Transfer.objects.filter(debit_id=sub.copy_account_id, kind=TransferKind.COPY_RETURN)
    assert returns.count() == 1
    assert main_wallet(sub.follower).balance == returns.get().amount
    assert (wallet(sub).balance, wallet(sub).locked, wallet(sub).is_closed) == (0, 0, True)


def test_two_unfollows_of_one_copy_return_it_once(world):
    assert connection.vendor == "postgresql"
    _, (sub,) = copies_with_mirrors(world, 1)
    world.price(ETH_PERP, "3250")
    results = run_concurrently(
        lambda: subscription_unfollow(subscription=sub), lambda: subscription_unfollow(subscription=sub)
    )
    assert sorted(r.already_ended for r in results) == [False, True]
    assert sum(r.returned for r in results) == D("5050")
    assert_ended_once(sub)
    assert ledger_check().ok


def test_unfollow_racing_the_watchdog_force_close(world):
    _, subs = copies_with_mirrors(world, 4)
    for sub in subs:
        risk_services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=D("20"))
    world.price(ETH_PERP, "3150")  # every copy loses 25 on ETH
    results = run_concurrently(
        lambda: watchdog.watchdog_tick(now=NOW, chunk_size=1),
        lambda: [subscription_unfollow(subscription=s) for s in reversed(subs)],
    )
    assert results[1] and all(not r.already_ended for r in results[1])
    for sub in subs:
        assert_ended_once(sub)
    assert not Position.objects.filter(subscription_id__in=[s.pk for s in subs], status="open").exists()
    assert ledger_check().ok


def test_unfollow_racing_the_followers_own_close(world):
    _, (sub,) = copies_with_mirrors(world, 1)
    eth = mirrors_of(sub).get(instrument__symbol=ETH_PERP)

    def own_close():
        try:
            return subscription_position_close(subscription=sub, position_id=eth.pk, quantity=D("0.5"))
        except DomainError as exc:  # the copy ended first
            return exc.code

    results = run_concurrently(own_close, lambda: subscription_unfollow(subscription=sub))
    assert results[0] == "SUBSCRIPTION_ENDED" or results[0].quantity_before == D("1")
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ENDED
    assert not Position.objects.filter(account_id=sub.copy_account_id, status="open").exists()
    assert (wallet(sub).balance, wallet(sub).is_closed) == (0, True)
    assert ledger_check().ok
