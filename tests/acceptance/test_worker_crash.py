"""A worker killed mid-propagation: a new worker and the reconciler finish the
event with exactly one execution and one order per follower, ledger balanced."""

import os
import signal
from decimal import Decimal

import pytest
from django.db.models import Count

from backoffice.loadgen import followers_seed_bulk
from copytrading import services, tasks
from copytrading.ledger import ledger_check
from copytrading.models import (
    ChunkStatus,
    Execution,
    LeaderEvent,
    LeaderEventStatus,
    Order,
    PropagationChunk,
)
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place
from tests.worker import celery_worker, wait_until

FOLLOWERS = 10_000
CHUNK = 100


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_propagation_resumes_without_loss_or_duplicate(instruments, settings):
    settings.FANOUT_CHUNK_SIZE = CHUNK  # this (test) process cuts the chunks
    leader = services.user_register(username="crash-leader", password="crash-pass-123")
    services.wallet_deposit(user=leader, amount=Decimal("100000"))
    portfolio = portfolio_create(leader=leader, name="Crash test")
    portfolio_fund(portfolio=portfolio, amount=Decimal("50000"))
    subscription_ids = followers_seed_bulk(portfolio=portfolio, count=FOLLOWERS)

    # The event is committed while no worker runs; its chunks are cut here and
    # queued for the first worker.
    from config.celery import app as celery_app

    celery_app.conf.task_always_eager = False
    (event,) = portfolio_order_place(
        portfolio=portfolio, symbol="BTC/USDT:USDT", side="buy", quantity=Decimal("0.2"), leverage=10
    )
    chunk_count = -(-FOLLOWERS // CHUNK)

    with celery_worker(extra_env={"FANOUT_CHUNK_SIZE": str(CHUNK)}) as first:
        wait_until(
            lambda: PropagationChunk.objects.filter(event=event, status=ChunkStatus.DONE).exists(),
            interval=0.01,
        )
        os.killpg(first.pid, signal.SIGKILL)  # no warm shutdown: in-flight chunks die mid-transaction
        first.wait()
    done_at_kill = PropagationChunk.objects.filter(event=event, status=ChunkStatus.DONE).count()
    assert 1 <= done_at_kill < chunk_count, "the kill must land mid-propagation"
    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.PROPAGATING

    with celery_worker(extra_env={"FANOUT_CHUNK_SIZE": str(CHUNK)}):
        # Messages the dead worker had taken are not redelivered before the
        # broker's visibility timeout; the reconciler re-queues stale chunks.
        tasks.reconcile_propagations.delay(stale_after_seconds=0)
        wait_until(
            lambda: LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.DONE,
            timeout=120,
        )

    executions = Execution.objects.filter(event=event)
    assert executions.count() == FOLLOWERS
    assert set(executions.values_list("subscription_id", flat=True)) == set(subscription_ids)
    assert not executions.values("subscription_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert executions.filter(outcome="COPIED").count() == FOLLOWERS
    orders = Order.objects.filter(leader_event=event)
    assert orders.count() == FOLLOWERS
    assert not orders.values("subscription_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert not PropagationChunk.objects.filter(event=event, status=ChunkStatus.PENDING).exists()
    report = ledger_check()
    assert report.ok, report
