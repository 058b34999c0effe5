"""PostgreSQL's screening statement lets through exactly the subscriptions the
Python rules find in breach (each limit set a hair either side of, or exactly
at, what its wallet measures), and stores the same peaks ``rules.next_peak``
would, for drawdown stops only."""

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, transaction

from followers import services as followers_services
from risk import rules, screen, selectors, services, watchdog
from risk.models import RiskState
from tests.risk.conftest import BTC_PERP, ETH_PERP

D = Decimal
TICK = D("0.00000001")
NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.postgres


def python_breaches(subs, paused=frozenset()) -> set[int]:
    """What the Python rules find; a paused copy breaches only the rule that
    closes (the unrealized daily loss limit)."""
    ids = [s.pk for s in subs]
    limits, default = selectors.watchdog_limits(ids)
    wallets = selectors.watchdog_figures(
        [s.copy_account_id for s in subs], day_start=services.utc_day_start(datetime.now(UTC))
    )
    peaks = dict(RiskState.objects.filter(pk__in=ids).values_list("pk", "peak_equity"))
    found = set()
    for sub in subs:
        w = wallets[sub.copy_account_id]
        snap = rules.Snapshot(w.equity, w.used_margin, w.total_unrealized, w.realized_today, peaks[sub.pk])
        found_rules = rules.evaluate(limits.get(sub.pk, default), snap)
        if sub.pk in paused:
            found_rules = [b for b in found_rules if b.action == rules.PAUSE_AND_CLOSE]
        if found_rules:
            found.add(sub.pk)
    return found


def test_the_screen_passes_exactly_the_breaches_python_finds(world):
    assert connection.vendor == "postgresql"
    rng = random.Random(7)
    with time_machine.travel(NOON, tick=False):
        portfolio = world.leader(fund="500000")
        subs = [world.follower(portfolio, amount=str(rng.choice([1000, 2000, 5000]))) for _ in range(24)]
        world.trade(portfolio, ETH_PERP, "buy", "1", leverage=3)
        world.trade(portfolio, BTC_PERP, "sell", "0.02", leverage=3)
        for sub in subs[6::12] + subs[7::12] + subs[8::12]:  # the drawdown stops below
            services.risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=D("99"))
        watchdog.watchdog_tick()  # the states and the first peaks
        world.price(ETH_PERP, "3107.37")
        world.price(BTC_PERP, "64411.1")

        wallets = selectors.watchdog_figures([s.copy_account_id for s in subs], day_start=NOON)
        for i, sub in enumerate(subs):
            w = wallets[sub.copy_account_id]
            nudge = (-TICK, D(0), TICK)[i % 3]
            rule = i // 3 % 4
            if rule == 0:
                services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=-w.unrealized_pnl + nudge)
            elif rule == 1:
                level = (w.equity * 100 / w.used_margin).quantize(D("0.01"))
                threshold = min(max(level + nudge * 10**6, D("100")), D("1000"))
                services.risk_limits_set(subscription_id=sub.pk, margin_call_level_pct=threshold)
            elif rule == 2:
                peak = RiskState.objects.get(pk=sub.pk).peak_equity
                drawdown = ((peak - w.equity) * 100 / peak).quantize(D("0.01"))
                services.risk_limits_set(
                    subscription_id=sub.pk, max_drawdown_pct=max(drawdown + nudge * 10**6, D("0.01"))
                )
            else:
                services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=D("1") + nudge)
        expected = python_breaches(subs)
        assert expected and len(expected) < len(subs)  # both kinds are in the sample

        first, last = min(s.pk for s in subs), max(s.pk for s in subs)
        with transaction.atomic():
            count, candidates = screen.screen_range(
                first, last, day_start=NOON, margin_call_default=selectors.margin_call_default()
            )
            transaction.set_rollback(True)
    assert count == len(subs)
    assert set(candidates) == expected


def test_the_screen_passes_exactly_the_spot_and_paused_breaches_python_finds(world):
    """Spot wallets (holdings at the mark against their cost, the day's spot
    sells) and paused copies (watched for their holdings, judged on the
    unrealized limit only), each limit a hair either side of, or exactly at,
    what the wallet measures."""
    rng = random.Random(12)
    with time_machine.travel(NOON, tick=False):
        world.price("ETH/USDT", "3200")
        world.price("BTC/USDT", "64000")
        portfolio = world.leader(fund="500000", mode="all")
        subs = [world.follower(portfolio, amount=str(rng.choice([6000, 7500, 9000]))) for _ in range(24)]
        world.trade(portfolio, "ETH/USDT", "buy", "2", leverage=1)
        world.trade(portfolio, "BTC/USDT", "buy", "0.05", leverage=1)
        world.trade(portfolio, ETH_PERP, "buy", "1", leverage=3)  # margin too, in the same wallets
        world.price("ETH/USDT", "3107.37")
        world.trade(portfolio, "ETH/USDT", "sell", "0.7", leverage=1)  # a realized spot loss
        world.price("BTC/USDT", "63411.1")
        world.price(ETH_PERP, "3150.5")
        watchdog.watchdog_tick()  # the states
        paused = {sub.pk for sub in subs[1::3]}
        for sub in subs:
            if sub.pk in paused:
                followers_services.subscription_pause(subscription=sub)

        wallets = selectors.watchdog_figures([s.copy_account_id for s in subs], day_start=NOON)
        for i, sub in enumerate(subs):
            w = wallets[sub.copy_account_id]
            assert w.spot_unrealized < 0 and w.realized_today < 0
            nudge = (-TICK, D(0), TICK)[i % 3 if i % 6 < 3 else 2 - i % 3]
            if i // 6 % 2 == 0:
                services.risk_limits_set(
                    subscription_id=sub.pk, daily_loss_limit_unrealized=-w.total_unrealized + nudge
                )
            else:
                services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=-w.realized_today + nudge)
        expected = python_breaches(subs, paused)
        assert expected and len(expected) < len(subs)
        assert expected & paused and paused - expected  # paused copies on both sides

        first, last = min(s.pk for s in subs), max(s.pk for s in subs)
        with transaction.atomic():
            count, candidates = screen.screen_range(
                first, last, day_start=NOON, margin_call_default=selectors.margin_call_default()
            )
            transaction.set_rollback(True)
    assert count == len(subs)
    assert set(candidates) == expected


def test_the_screen_stores_the_peaks_rules_next_peak_gives(world):
    with time_machine.travel(NOON, tick=False):
        portfolio = world.leader()
        subs = [world.follower(portfolio) for _ in range(3)]
        unwatched = world.follower(portfolio)  # no drawdown stop: no peak kept
        world.trade(portfolio, ETH_PERP, "buy", "1")
        for sub in subs:
            services.risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=D("50"))
        watchdog.watchdog_tick()
        before = dict(RiskState.objects.values_list("pk", "peak_equity"))
        world.price(ETH_PERP, "3333.33")  # every wallet gains: a new peak each
        wallets = selectors.watchdog_figures([s.copy_account_id for s in subs], day_start=NOON)
        first, last = subs[0].pk, unwatched.pk
        with transaction.atomic():
            _, candidates = screen.screen_range(first, last, day_start=NOON, margin_call_default=D("110"))
        assert candidates == []
    for sub in subs:
        w = wallets[sub.copy_account_id]
        expected = rules.next_peak(before[sub.pk], w.flows, w.flows, w.equity)
        assert expected > before[sub.pk]
        assert RiskState.objects.get(pk=sub.pk).peak_equity == expected
    assert RiskState.objects.get(pk=unwatched.pk).peak_equity is None
