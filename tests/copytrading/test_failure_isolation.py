"""A follower whose copy raises never blocks the others (issue #12, point 7).

The poison is injected where the engine calls it, ``decisions.decide`` (the
worker test in tests/acceptance/test_poison_follower_worker.py uses a
data-level poison instead). The chunk is bisected until the culprit is alone:
the culprit gets FAILED ``INTERNAL_ERROR``, everyone else exactly what an
unpoisoned run gives them, the event completes and the next one runs.
"""

import math
from decimal import Decimal

import psycopg
import pytest
from django.db import OperationalError
from django.db.models import Count

from backoffice.loadgen import followers_seed_bulk
from backoffice.models import JobError
from copytrading import decisions, propagation
from copytrading.ledger import ledger_check
from copytrading.models import (
    Account,
    ChunkStatus,
    Execution,
    Instrument,
    LeaderEvent,
    LeaderEventStatus,
    Order,
    PropagationChunk,
)
from copytrading.services import price_set, wallet_deposit
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place
from tests.factories import UserFactory

D = Decimal
ETH_PERP = "ETH/USDT:USDT"


class Poisoned(RuntimeError):
    """What a bug in one follower's decision raises."""


@pytest.fixture
def poison(monkeypatch):
    """``poison(ids)``: the decision of these subscriptions raises (and every
    call is counted, to see the bisection's cost)."""
    real = decisions.decide
    state = {"ids": set(), "calls": 0}

    def decide(event, target, **kwargs):
        state["calls"] += 1
        if target.subscription_id in state["ids"]:
            raise Poisoned(f"bad row for subscription {target.subscription_id}")
        return real(event, target, **kwargs)

    monkeypatch.setattr(decisions, "decide", decide)

    def set_ids(ids):
        state["ids"] = set(ids)
        return state

    return set_ids


def _book(settings, instruments, followers: int):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = followers  # one chunk: the bisection's worst case
    leader = UserFactory()
    wallet_deposit(user=leader, amount=D("21000"))
    portfolio = portfolio_create(leader=leader, name=f"poison {leader.pk}", mode="margin")
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    subs = followers_seed_bulk(portfolio=portfolio, count=followers)
    price_set(instrument=Instrument.objects.get(symbol=ETH_PERP), price=D("3200"))
    return portfolio, subs


def _open(portfolio) -> LeaderEvent:
    # Without the on-commit dispatch: the engine is driven by hand.
    (event,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10)
    return event


def _run(event: LeaderEvent) -> list[propagation.ChunkResult]:
    results = [propagation.chunk_propagate(chunk_id) for chunk_id in propagation.event_start(event.pk)]
    propagation.event_complete(event.pk)
    return results


def _outcomes(event: LeaderEvent) -> dict[int, tuple[str, str]]:
    return {
        sid: (outcome, reason)
        for sid, outcome, reason in Execution.objects.filter(event=event).values_list(
            "subscription_id", "outcome", "reason_code"
        )
    }


def _assert_exactly_once(event: LeaderEvent) -> None:
    executions = Execution.objects.filter(event=event)
    assert not executions.values("subscription_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    orders = Order.objects.filter(leader_event=event)
    assert not orders.values("subscription_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    report = ledger_check()
    assert report.ok, report


@pytest.mark.parametrize(
    "followers, culprits",
    [
        pytest.param(500, lambda subs: [subs[250]], id="1 culprit among 500"),
        pytest.param(500, lambda subs: [subs[0]], id="culprit first"),
        pytest.param(500, lambda subs: [subs[-1]], id="culprit last"),
        pytest.param(500, lambda subs: [subs[17], subs[401]], id="2 culprits"),
        pytest.param(500, lambda subs: [subs[10], subs[11]], id="2 neighbours"),
        pytest.param(40, lambda subs: subs[1:], id="all but one fail"),
    ],
)
def test_bisection_isolates_exactly_the_culprits(settings, instruments, poison, followers, culprits):
    portfolio, subs = _book(settings, instruments, followers)
    bad = culprits(subs)
    state = poison(bad)
    event = _open(portfolio)

    (result,) = _run(event)

    outcomes = _outcomes(event)
    assert set(outcomes) == set(subs)  # every follower has its row
    assert {sid for sid, (outcome, _) in outcomes.items() if outcome == "FAILED"} == set(bad)
    assert {outcomes[sid] for sid in bad} == {("FAILED", "INTERNAL_ERROR")}
    assert {outcomes[sid] for sid in set(subs) - set(bad)} <= {("COPIED", "")}
    # The others got their orders; the culprits nothing at all.
    orders = Order.objects.filter(leader_event=event)
    assert orders.count() == followers - len(bad)
    assert not orders.filter(subscription_id__in=bad).exists()
    culprit_wallets = Account.objects.filter(subscription__pk__in=bad)
    assert set(culprit_wallets.values_list("balance", "locked")) == {(D("5000"), D("0"))}
    assert (result.copied, result.failed) == (followers - len(bad), len(bad))
    chunk = PropagationChunk.objects.get(event=event)
    assert (chunk.status, chunk.copied, chunk.failed) == (ChunkStatus.DONE, followers - len(bad), len(bad))
    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.DONE
    _assert_exactly_once(event)
    # One bug, one job-error row, counted once per isolated follower.
    (error,) = JobError.objects.all()
    assert (error.task, error.count, error.severity) == (propagation.FAILURE_TASK, len(bad), "high")
    assert error.exception_class.endswith("Poisoned")
    assert f"subscription {bad[-1]}" in error.message
    assert "subscription_id" in error.arguments and "in decide" in error.traceback
    # The bisection's cost: each culprit costs one pass over the chunk per
    # level of halving (log2 n levels), not one transaction per follower.
    assert state["calls"] <= followers * (1 + math.ceil(math.log2(followers)) * len(bad))


def test_the_portfolios_next_event_runs_after_a_poisoned_one(settings, instruments, poison):
    portfolio, subs = _book(settings, instruments, 12)
    settings.FANOUT_CHUNK_SIZE = 5  # three chunks; the culprit is in the middle one
    poison([subs[6]])
    first = _open(portfolio)
    second = _open(portfolio)  # waits behind the first, in sequence order
    assert propagation.event_start(second.pk) == []

    _run(first)  # completing it dispatches the next event (eager Celery here)

    for event in (first, second):
        assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.DONE
        outcomes = _outcomes(event)
        assert outcomes.pop(subs[6]) == ("FAILED", "INTERNAL_ERROR")
        assert set(outcomes) == set(subs) - {subs[6]}
        assert set(outcomes.values()) == {("COPIED", "")}
        assert sum(c.failed for c in PropagationChunk.objects.filter(event=event)) == 1
        _assert_exactly_once(event)
    (error,) = JobError.objects.all()
    assert error.count == 2  # the same bug on two events


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(OperationalError("server closed the connection unexpectedly"), id="django OperationalError"),
        # The bulk writer's COPY raises psycopg's own errors, unwrapped by Django.
        pytest.param(psycopg.errors.DeadlockDetected("deadlock detected"), id="deadlock mid-COPY"),
    ],
)
def test_an_outage_is_retried_not_turned_into_failed_rows(settings, instruments, monkeypatch, outage):
    """A database outage or a deadlock says nothing about the follower: the
    chunk raises and stays pending for the reconciler, as before, with
    nothing written."""
    portfolio, _subs = _book(settings, instruments, 20)

    def down(*args, **kwargs):
        raise outage

    monkeypatch.setattr(decisions, "decide", down)
    event = _open(portfolio)
    (chunk_id,) = propagation.event_start(event.pk)

    with pytest.raises(type(outage)):
        propagation.chunk_propagate(chunk_id)

    assert not Execution.objects.filter(event=event).exists()
    assert PropagationChunk.objects.get(pk=chunk_id).status == ChunkStatus.PENDING
    assert not JobError.objects.exists()  # a task failure is recorded by the worker's signal, not here
    monkeypatch.undo()
    propagation.chunk_propagate(chunk_id)  # the reconciler's retry once the database is back
    assert set(_outcomes(event).values()) == {("COPIED", "")}


def test_a_crash_mid_isolation_and_a_replay_duplicate_nothing(settings, instruments, poison, monkeypatch):
    """The worker dies mid-bisection (modelled by an outage on the third part:
    like kill -9, the part in flight rolls back and the chunk stays pending).
    The reconciler's replay serves only the followers not yet served, once,
    and the culprit gets one FAILED row."""
    portfolio, subs = _book(settings, instruments, 64)
    culprit = subs[40]
    poison([culprit])
    event = _open(portfolio)
    (chunk_id,) = propagation.event_start(event.pk)
    real_apply = propagation._chunk_apply
    calls = {"n": 0}

    def dies_on_third_part(chunk_id, part=None):
        if part is not None:
            calls["n"] += 1
            if calls["n"] == 3:
                raise OperationalError("server closed the connection unexpectedly")
        return real_apply(chunk_id, part)

    monkeypatch.setattr(propagation, "_chunk_apply", dies_on_third_part)
    with pytest.raises(OperationalError):
        propagation.chunk_propagate(chunk_id)
    served_at_crash = Execution.objects.filter(event=event).count()
    assert 0 < served_at_crash < 64
    assert PropagationChunk.objects.get(pk=chunk_id).status == ChunkStatus.PENDING
    monkeypatch.setattr(propagation, "_chunk_apply", real_apply)
    balances = dict(Account.objects.values_list("pk", "balance"))

    propagation.chunk_propagate(chunk_id)  # the replay
    propagation.chunk_propagate(chunk_id)  # and a duplicate message: the checkpoint is done
    propagation.event_complete(event.pk)

    outcomes = _outcomes(event)
    assert set(outcomes) == set(subs)
    assert outcomes[culprit] == ("FAILED", "INTERNAL_ERROR")
    assert Execution.objects.filter(event=event, outcome="FAILED").count() == 1
    assert Order.objects.filter(leader_event=event).count() == 63
    chunk = PropagationChunk.objects.get(pk=chunk_id)
    assert (chunk.status, chunk.copied, chunk.failed) == (ChunkStatus.DONE, 63, 1)
    # The followers served before the crash were not charged again.
    served_before = Execution.objects.filter(event=event).order_by("pk")[:served_at_crash]
    accounts = dict(
        Account.objects.filter(subscription__pk__in=[e.subscription_id for e in served_before]).values_list(
            "pk", "balance"
        )
    )
    assert all(balances[pk] == balance for pk, balance in accounts.items())
    _assert_exactly_once(event)
    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.DONE


def test_a_poisoned_follower_on_a_limit_order_event_is_isolated_too(settings, instruments, poison):
    """Limit-order mirror events (and closes, reduces, TP/SL) run through the
    same chunk machinery."""
    portfolio, subs = _book(settings, instruments, 30)
    poison([subs[3]])
    (event,) = portfolio_order_place(
        portfolio=portfolio,
        symbol=ETH_PERP,
        side="buy",
        quantity=D("1"),
        leverage=10,
        order_type="limit",
        price=D("3000"),
    )
    _run(event)
    outcomes = _outcomes(event)
    assert outcomes[subs[3]] == ("FAILED", "INTERNAL_ERROR")
    assert {outcomes[s] for s in subs if s != subs[3]} == {("COPIED", "")}
    assert Order.objects.filter(leader_order_id=event.payload["leader_order_id"]).count() == 29
    _assert_exactly_once(event)


def test_the_normal_path_runs_each_follower_once(settings, instruments, poison):
    """No failure, no isolation: one decision per follower."""
    portfolio, _subs = _book(settings, instruments, 50)
    state = poison([])
    _run(_open(portfolio))
    assert state["calls"] == 50
    assert not JobError.objects.exists()


def test_a_mirror_limit_that_breaks_the_match_does_not_stop_the_market(
    settings, instruments, monkeypatch, django_capture_on_commit_callbacks
):
    """The matching pass for resting mirror orders runs in the price update,
    not in a chunk. A mirror that makes it raise: the match is redone without
    the mirror pass (the leader fills, TP/SL still trigger), the failure is
    reported, and the leader's fill event fills the mirrors through the
    propagation instead, once each."""
    from copytrading.matching import MIRROR_PASS_FAILURE_TASK
    from copytrading.matching.passes import Matcher
    from tests.copytrading.world import World, mirror_orders_of, mirrors_of, outcomes

    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 2
    world = World(instruments, django_capture_on_commit_callbacks)
    portfolio = world.leader()
    subs = [world.follower(portfolio) for _ in range(3)]
    world.limit(portfolio, ETH_PERP, "buy", "2", "3100")

    def broken(self, orders, leader_fills):
        if orders:
            raise Poisoned(f"mirror order {orders[0].pk} has a row no code expected")

    monkeypatch.setattr(Matcher, "fill_mirror_orders", broken)
    (filled,) = world.price(ETH_PERP, "3100")

    assert filled.kind == "position_open" and LeaderEvent.objects.get(pk=filled.pk).status == LeaderEventStatus.DONE
    assert outcomes(filled) == {s.pk: ("COPIED", "") for s in subs}  # filled by the propagation instead
    for sub in subs:
        (mirror_order,) = mirror_orders_of(sub)
        assert mirror_order.status == "filled"
        (mirror,) = mirrors_of(sub)
        assert (mirror.quantity, mirror.entry_price) == (D("1"), D("3100"))
    (error,) = JobError.objects.all()
    assert (error.task, error.count) == (MIRROR_PASS_FAILURE_TASK, 1)
    assert ledger_check().ok


def test_a_failed_row_records_what_the_leader_did_like_its_neighbours(settings, instruments, poison):
    """The execution log compares a follower with the leader: a FAILED row of
    a reduce carries the leader's quantity, share and price as the COPIED
    rows of the same event do."""
    portfolio, subs = _book(settings, instruments, 6)
    _run(_open(portfolio))
    poison([subs[2]])
    (reduce,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="sell", quantity=D("0.25"))
    _run(reduce)

    rows = {
        sid: (outcome, quantity, fraction, price)
        for sid, outcome, quantity, fraction, price in Execution.objects.filter(event=reduce).values_list(
            "subscription_id", "outcome", "leader_quantity", "leader_fraction", "leader_price"
        )
    }
    failed = rows.pop(subs[2])
    assert failed[0] == "FAILED"
    assert {row[1:] for row in rows.values()} == {failed[1:]} == {(D("0.25"), D("0.25"), D("3200"))}


def test_a_failure_every_follower_hits_is_the_events_and_leaves_the_chunk_pending(settings, instruments, poison):
    """If every follower of the chunk raises, the event is broken, not the
    followers: nothing is written, the chunk stays pending for the
    reconciler (the job-error feed shows the task's failure), and once the
    cause is gone a replay copies everyone."""
    portfolio, subs = _book(settings, instruments, 40)
    poison(subs)
    event = _open(portfolio)
    (chunk_id,) = propagation.event_start(event.pk)

    with pytest.raises(Poisoned):
        propagation.chunk_propagate(chunk_id)

    assert not Execution.objects.filter(event=event).exists()
    assert not Order.objects.filter(leader_event=event).exists()
    assert PropagationChunk.objects.get(pk=chunk_id).status == ChunkStatus.PENDING
    assert not JobError.objects.exists()  # no follower was isolated: the task failure is the report

    poison([])  # the bug is fixed
    propagation.chunk_propagate(chunk_id)
    propagation.event_complete(event.pk)
    assert set(_outcomes(event).values()) == {("COPIED", "")}
    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.DONE
    _assert_exactly_once(event)


def test_a_replay_that_finds_only_the_culprits_left_still_fails_them(settings, instruments, poison, monkeypatch):
    """A crash after the innocent parts committed but before the culprits'
    rows leaves only culprits unserved: the replay must not take them for an
    event-level failure, since others were served."""
    portfolio, subs = _book(settings, instruments, 20)
    bad = [subs[3], subs[15]]
    poison(bad)
    event = _open(portfolio)
    (chunk_id,) = propagation.event_start(event.pk)

    real = propagation._chunk_fail_follower

    def crash(*args, **kwargs):
        raise SystemExit("kill -9")

    monkeypatch.setattr(propagation, "_chunk_fail_follower", crash)
    with pytest.raises(SystemExit):
        propagation.chunk_propagate(chunk_id)
    assert Execution.objects.filter(event=event).count() == 18

    monkeypatch.setattr(propagation, "_chunk_fail_follower", real)
    propagation.chunk_propagate(chunk_id)
    outcomes = _outcomes(event)
    assert {sid for sid, (outcome, _) in outcomes.items() if outcome == "FAILED"} == set(bad)
    assert PropagationChunk.objects.get(pk=chunk_id).status == ChunkStatus.DONE
    (error,) = JobError.objects.all()
    assert error.count == 2
    _assert_exactly_once(event)
