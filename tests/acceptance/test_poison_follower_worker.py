"""A poisoned follower with a real Celery worker on PostgreSQL (issue #12).

The poison is data, so it crosses into the worker process: one follower's
mirror is an open position with quantity 0 (a row no code writes, but that
the schema allows: a bad manual repair, a past bug). Copying the leader's
close makes that follower's close order a zero-quantity order, which the
database refuses (``order_quantity_positive``): the whole chunk raises. The
worker isolates the follower: FAILED for it, the close for everyone else,
the event done, the portfolio's next event propagated, one job-error row.
"""

from decimal import Decimal

import pytest
from django.db.models import Count

from backoffice.models import JobError
from copytrading import propagation
from copytrading.models import (
    ChunkStatus,
    Execution,
    LeaderEvent,
    LeaderEventStatus,
    Order,
    Position,
    PositionStatus,
    PropagationChunk,
)
from copytrading.services import wallet_deposit
from followers.services import subscription_create
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place, portfolio_position_close
from tests.factories import UserFactory
from tests.worker import celery_worker, wait_until

D = Decimal
ETH_PERP = "ETH/USDT:USDT"
FOLLOWERS = 24
CHUNK = 10


def _done(event: LeaderEvent) -> bool:
    return LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.DONE


def _outcomes(event: LeaderEvent) -> dict[int, tuple[str, str]]:
    rows = Execution.objects.filter(event=event).values_list("subscription_id", "outcome", "reason_code")
    return {sid: (outcome, reason) for sid, outcome, reason in rows}


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_poisoned_follower_fails_alone_and_the_portfolio_moves_on(instruments, settings):
    from config.celery import app as celery_app

    settings.FANOUT_CHUNK_SIZE = CHUNK  # this (test) process cuts the chunks
    settings.PAPER_SPREAD_BPS = D("0")
    leader = UserFactory()
    wallet_deposit(user=leader, amount=D("21000"))
    portfolio = portfolio_create(leader=leader, name="Poisoned book", mode="margin")
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    subs = []
    for _ in range(FOLLOWERS):
        user = UserFactory()
        wallet_deposit(user=user, amount=D("5000"))
        subs.append(subscription_create(follower=user, portfolio=portfolio, amount=D("5000"), multiplier=D("0.5")).pk)
    poisoned = subs[13]  # in the middle chunk

    celery_app.conf.task_always_eager = False
    with celery_worker(extra_env={"FANOUT_CHUNK_SIZE": str(CHUNK), "PAPER_SPREAD_BPS": "0"}):
        (opened,) = portfolio_order_place(
            portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10
        )
        wait_until(lambda: _done(opened))
        assert set(_outcomes(opened).values()) == {("COPIED", "")}
        # The poison: the follower's mirror left open with nothing in it.
        Position.objects.filter(subscription_id=poisoned, status=PositionStatus.OPEN).update(quantity=D("0"))

        closed = portfolio_position_close(portfolio=portfolio, position_id=opened.payload["leader_position_id"])
        (reopened,) = portfolio_order_place(
            portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("2"), leverage=10
        )
        wait_until(lambda: _done(closed) and _done(reopened))

        # A task that fails outright in the worker reaches the feed through task_failure.
        from copytrading.tasks import propagate_chunk

        propagate_chunk.delay(987654)
        wait_until(lambda: JobError.objects.filter(task="copytrading.tasks.propagate_chunk").exists())

    # The close: FAILED for the poisoned follower only, closed for everyone else.
    outcomes = _outcomes(closed)
    assert set(outcomes) == set(subs)
    assert outcomes.pop(poisoned) == ("FAILED", "INTERNAL_ERROR")
    assert set(outcomes.values()) == {("COPIED", "")}
    close_orders = Order.objects.filter(leader_event=closed)
    assert close_orders.count() == FOLLOWERS - 1 and not close_orders.filter(subscription_id=poisoned).exists()
    open_mirrors = Position.objects.filter(leader_position_id=opened.payload["leader_position_id"], status="open")
    assert list(open_mirrors.values_list("subscription_id", flat=True)) == [poisoned]
    chunks = PropagationChunk.objects.filter(event=closed)
    assert set(chunks.values_list("status", flat=True)) == {ChunkStatus.DONE}
    assert sum(chunks.values_list("failed", flat=True)) == 1
    assert sum(chunks.values_list("copied", flat=True)) == FOLLOWERS - 1

    # The portfolio's next event propagated to everyone, the poisoned follower included.
    assert set(_outcomes(reopened).values()) == {("COPIED", "")}
    assert len(_outcomes(reopened)) == FOLLOWERS
    for event in (opened, closed, reopened):
        executions = Execution.objects.filter(event=event)
        assert not executions.values("subscription_id").annotate(n=Count("id")).filter(n__gt=1).exists()

    # One job-error row for the poisoned follower, counted once; one for the failed task.
    (follower_error,) = JobError.objects.filter(task=propagation.FAILURE_TASK)
    assert follower_error.count == 1
    # Raised by the bulk writer's COPY, on the raw psycopg cursor.
    assert follower_error.exception_class == "psycopg.errors.CheckViolation"
    assert f"'subscription_id': {poisoned}" in follower_error.arguments or f"subscription_id={poisoned}" in (
        follower_error.arguments
    )
    assert "order_quantity_positive" in follower_error.message
    (task_error,) = JobError.objects.filter(task="copytrading.tasks.propagate_chunk")
    assert (task_error.count, task_error.arguments) == (1, "987654")
    assert task_error.exception_class.endswith("DoesNotExist")
    assert JobError.objects.count() == 2


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_isolation_resumes_without_duplicate(instruments, settings):
    """kill -9 while a worker bisects a poisoned chunk: some parts committed,
    the chunk still pending. A new worker and the reconciler finish it: one
    execution row and at most one order per follower, FAILED only for the
    poisoned ones, the ledger balanced."""
    import os
    import signal

    from backoffice.loadgen import followers_seed_bulk
    from config.celery import app as celery_app
    from copytrading import tasks
    from copytrading.ledger import ledger_check

    followers = 1000
    settings.FANOUT_CHUNK_SIZE = followers  # one chunk: the longest bisection
    settings.PAPER_SPREAD_BPS = D("0")
    env = {"FANOUT_CHUNK_SIZE": str(followers), "PAPER_SPREAD_BPS": "0"}
    leader = UserFactory()
    wallet_deposit(user=leader, amount=D("21000"))
    portfolio = portfolio_create(leader=leader, name="Killed mid-isolation", mode="margin")
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    subs = followers_seed_bulk(portfolio=portfolio, count=followers)
    poisoned = [subs[700], subs[-1]]

    celery_app.conf.task_always_eager = False
    with celery_worker(extra_env=env) as first:
        (opened,) = portfolio_order_place(
            portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10
        )
        wait_until(lambda: _done(opened), timeout=120)
        Position.objects.filter(subscription_id__in=poisoned, status=PositionStatus.OPEN).update(quantity=D("0"))
        closed = portfolio_position_close(portfolio=portfolio, position_id=opened.payload["leader_position_id"])
        # The first half commits once the whole chunk has failed: isolation is under way.
        wait_until(lambda: Execution.objects.filter(event=closed).exists(), interval=0.005, timeout=120)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    served_at_kill = Execution.objects.filter(event=closed).count()
    assert 0 < served_at_kill < followers, "the kill must land mid-isolation"
    assert PropagationChunk.objects.get(event=closed).status == ChunkStatus.PENDING

    with celery_worker(extra_env=env):
        tasks.reconcile_propagations.delay(stale_after_seconds=0)
        wait_until(lambda: _done(closed), timeout=120)

    outcomes = _outcomes(closed)
    assert set(outcomes) == set(subs)
    assert {sid for sid, (outcome, _) in outcomes.items() if outcome == "FAILED"} == set(poisoned)
    executions = Execution.objects.filter(event=closed)
    assert not executions.values("subscription_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    orders = Order.objects.filter(leader_event=closed)
    assert orders.count() == followers - len(poisoned)
    assert not orders.values("subscription_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    chunk = PropagationChunk.objects.get(event=closed)
    assert (chunk.status, chunk.copied, chunk.failed) == (ChunkStatus.DONE, followers - 2, 2)
    report = ledger_check()
    assert report.ok, report
