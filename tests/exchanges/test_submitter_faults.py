"""The submitter under faults: random timeouts after the exchange accepted,
429s and 5xx; submitters racing on the same rows; a real Celery worker
killed with SIGKILL mid-batch. After all of it every row has exactly one
order on the double (its refusal of duplicate client ids is switched off,
so a resend would be a second order) and the rows say what happened."""

import os
import signal
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from copytrading import enqueue
from copytrading.exchanges.models import ExchangeOrder
from copytrading.exchanges.models import ExchangeOrderStatus as S
from copytrading.exchanges.submitter import SUBMIT_TASK, SWEEP_TASK, submit_orders
from tests.exchanges.submitting import link_accounts, make_orders, orders_on_double
from tests.worker import celery_worker, wait_until

ORDER_PATH = "/fapi/v1/order"


def requests_for(double, client_order_id: str, method: str):
    key = "newClientOrderId" if method == "POST" else "origClientOrderId"
    return [r for r in double.state.seen(ORDER_PATH, method) if r.params.get(key) == client_order_id]


@pytest.mark.slow
@pytest.mark.django_db
def test_with_random_faults_every_row_ends_with_exactly_one_order(submit_settings, exchange_double):
    exchange_double.state.unique_client_order_ids = False
    accounts = link_accounts(exchange_double, 100)
    rows = make_orders(accounts, per_account=2)
    drawn = exchange_double.inject_random(
        {"timeout_after_accept": 0.05, 429: 0.05, 500: 0.01}, seed=15, path=ORDER_PATH, seconds=1.0
    )

    report = submit_orders([row.pk for row in rows])

    on_double = orders_on_double(exchange_double)
    assert sorted(on_double) == sorted(row.client_order_id for row in rows)
    assert set(on_double.values()) == {1}, "an order was placed twice"
    assert drawn.drawn["timeout_after_accept"] > 0 and drawn.drawn[429] > 0
    assert report.left == 0 and report.retried > 0
    for row in ExchangeOrder.objects.all():
        assert row.status == S.FILLED, (row, row.reject_code, row.reject_message)
        posts = requests_for(exchange_double, row.client_order_id, "POST")
        gets = requests_for(exchange_double, row.client_order_id, "GET")
        # Each attempt sent at most one order request; an attempt after an
        # answer that may hide an order looked it up first.
        assert 1 <= len(posts) <= row.attempts
        lost = [p for p in posts if p.answered in (0, 500)]
        if lost:
            assert row.attempts >= 2 and gets, row
        if not lost and not any(p.answered == 429 for p in posts):
            assert row.attempts == 1
        assert row.submitted_at <= row.acknowledged_at <= row.filled_at
    accepted_then_lost = sum(
        1 for row in rows for p in requests_for(exchange_double, row.client_order_id, "POST") if p.answered == 0
    )
    assert accepted_then_lost > 0
    assert ExchangeOrder.objects.aggregate(n=Sum("attempts"))["n"] == report.attempts


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_submitters_racing_on_the_same_rows_never_send_one_twice(submit_settings, exchange_double):
    assert connection.vendor == "postgresql"
    exchange_double.state.unique_client_order_ids = False
    exchange_double.latency = 0.1
    accounts = link_accounts(exchange_double, 60)
    rows = make_orders(accounts, per_account=2)
    ExchangeOrder.objects.update(decided_at=timezone.now() - timedelta(seconds=10))  # the sweep may take them
    pks = [row.pk for row in rows]
    barrier = threading.Barrier(3)
    reports: list[object] = []

    def run(order_ids) -> None:
        try:
            barrier.wait(timeout=10)
            reports.append(submit_orders(order_ids))
        except BaseException as exc:  # noqa: BLE001 - reported in the assertion
            reports.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(ids,)) for ids in (pks, list(reversed(pks)), None)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert all(not isinstance(r, BaseException) for r in reports), reports
    assert sum(r.claimed for r in reports) == len(rows)  # each row taken by exactly one of them
    on_double = orders_on_double(exchange_double)
    assert len(on_double) == len(rows) and set(on_double.values()) == {1}
    assert len(exchange_double.state.seen(ORDER_PATH, "POST")) == len(rows)
    assert set(ExchangeOrder.objects.values_list("status", "attempts")) == {(S.FILLED, 1)}


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_leaves_exactly_one_order_per_row(submit_settings, exchange_double):
    exchange_double.state.unique_client_order_ids = False
    exchange_double.latency = 0.25
    accounts = link_accounts(exchange_double, 240)
    rows = make_orders(accounts)
    env = {
        "EXCHANGE_URL_OVERRIDE": exchange_double.url,
        "EXCHANGE_SECRET_KEYS": ",".join(settings.EXCHANGE_SECRET_KEYS),
        "EXCHANGE_SUBMIT_CONCURRENCY": "8",  # 240 orders at 0.25 s, 8 at a time: ~7.5 s
        "EXCHANGE_SUBMIT_TIMEOUT_SECONDS": "2",
        "EXCHANGE_ORDER_RECV_WINDOW_SECONDS": "1",
        "EXCHANGE_SUBMIT_LEASE_SECONDS": "3",
        "EXCHANGE_SUBMIT_SWEEP_GRACE_SECONDS": "0",
    }
    from config.celery import app as celery_app

    celery_app.conf.task_always_eager = False
    with celery_worker(extra_env=env, queues="exchange") as first:
        enqueue.task(SUBMIT_TASK).delay([row.pk for row in rows])
        wait_until(lambda: ExchangeOrder.objects.filter(status=S.FILLED).count() >= 40, interval=0.02)
        os.killpg(first.pid, signal.SIGKILL)  # no warm shutdown: requests in flight, answers never recorded
        first.wait()
    filled_at_kill = ExchangeOrder.objects.filter(status=S.FILLED).count()
    assert filled_at_kill < len(rows), "the kill must land mid-batch"
    # Every row was claimed (committed as sent) before the first request.
    assert not ExchangeOrder.objects.filter(status=S.PENDING).exists()
    time.sleep(0.5)  # the requests in flight at the kill reach the double's book
    placed_unrecorded = len(orders_on_double(exchange_double)) - filled_at_kill
    assert placed_unrecorded > 0, "some orders must have been placed without their answer being recorded"

    with celery_worker(extra_env=env, queues="exchange"):
        # The dead worker's message is not redelivered before the broker's
        # visibility timeout: the beat sweep (called here) takes over once
        # the rows' lease is over.
        def swept() -> bool:
            enqueue.task(SWEEP_TASK).delay()
            return not ExchangeOrder.objects.filter(status__in=(S.PENDING, S.SENT)).exists()

        wait_until(swept, timeout=120, interval=1.0)

    on_double = orders_on_double(exchange_double)
    assert sorted(on_double) == sorted(row.client_order_id for row in rows)
    assert set(on_double.values()) == {1}, "an order was placed twice"
    assert set(ExchangeOrder.objects.values_list("status", flat=True)) == {S.FILLED}
    retaken = ExchangeOrder.objects.filter(attempts__gte=2)
    assert retaken.count() >= placed_unrecorded
    for row in retaken:  # looked up before anything was sent again
        assert requests_for(exchange_double, row.client_order_id, "GET")
