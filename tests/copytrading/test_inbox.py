"""The inbox: claim once per (source, portfolio, external id), kept for the dedup window."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from config.celery import app as celery_app
from copytrading import inbox_tasks
from copytrading.inbox import DEDUP_WINDOW, inbox_accept, inbox_cleanup, inbox_result_record
from copytrading.models import InboxMessage, InboxStatus

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def accept(external_id: str = "sig-1", *, portfolio_id: int = 7, source: str = "signal", payload=None):
    return inbox_accept(
        source=source, external_id=external_id, portfolio_id=portfolio_id, payload=payload or {"n": external_id}
    )


def test_a_new_message_is_claimed():
    message, created = accept(payload={"symbol": "BTC/USDT:USDT"})
    assert created
    row = InboxMessage.objects.get()
    assert (row.pk, row.source, row.external_id, row.portfolio_id) == (message.pk, "signal", "sig-1", 7)
    assert row.payload == {"symbol": "BTC/USDT:USDT"}
    assert row.status == InboxStatus.RECEIVED


def test_a_duplicate_returns_the_first_message_and_changes_nothing():
    first, _ = accept(payload={"quantity": "1"})
    inbox_result_record(message=first, status=InboxStatus.EXECUTED, result={"events": [{"id": 1}]})

    again, created = accept(payload={"quantity": "999"})

    assert not created
    assert again.pk == first.pk
    row = InboxMessage.objects.get()
    assert row.payload == {"quantity": "1"}
    assert (row.status, row.result) == (InboxStatus.EXECUTED, {"events": [{"id": 1}]})


def test_a_duplicate_inside_a_transaction_leaves_it_usable():
    from django.db import transaction

    accept()
    with transaction.atomic():
        _, created = accept()
        # The IntegrityError was confined to a savepoint: the transaction still works.
        _, other = accept("sig-2")
    assert (created, other) == (False, True)
    assert InboxMessage.objects.count() == 2


def test_the_same_id_from_another_portfolio_or_source_is_a_different_message():
    accept(portfolio_id=7)
    _, other_portfolio = accept(portfolio_id=8)
    _, other_source = accept(portfolio_id=7, source="ccxt")
    assert (other_portfolio, other_source) == (True, True)
    assert InboxMessage.objects.count() == 3


def test_cleanup_deletes_only_messages_older_than_seven_days():
    with time_machine.travel(T0, tick=False):
        accept("old")
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        accept("recent")
    with time_machine.travel(T0 + DEDUP_WINDOW, tick=False):
        # Exactly seven days old is still inside the window.
        assert inbox_cleanup() == 0
    with time_machine.travel(T0 + DEDUP_WINDOW + timedelta(seconds=1), tick=False):
        assert inbox_cleanup() == 1
        assert inbox_cleanup() == 0  # idempotent
    assert list(InboxMessage.objects.values_list("external_id", flat=True)) == ["recent"]


def test_a_message_redelivered_after_cleanup_is_accepted_again():
    # The documented limit: dedup holds for the window only.
    with time_machine.travel(T0, tick=False):
        first, _ = accept()
    with time_machine.travel(T0 + DEDUP_WINDOW - timedelta(seconds=1), tick=False):
        assert accept()[1] is False
    with time_machine.travel(T0 + DEDUP_WINDOW + timedelta(hours=1), tick=False):
        inbox_cleanup()
        again, created = accept()
    assert created
    assert again.pk != first.pk


def test_cleanup_task_runs_the_service_and_is_scheduled_hourly():
    with time_machine.travel(T0, tick=False):
        accept("a")
        accept("b")
    with time_machine.travel(T0 + timedelta(days=8), tick=False):
        accept("c")
        assert inbox_tasks.cleanup_inbox.delay().get() == 2
    assert list(InboxMessage.objects.values_list("external_id", flat=True)) == ["c"]

    entry = celery_app.conf.beat_schedule["inbox-cleanup"]
    assert entry == {"task": "copytrading.inbox_tasks.cleanup_inbox", "schedule": 3600.0}
    # Workers import the module (autodiscovery only finds tasks.py).
    assert "copytrading.inbox_tasks" in celery_app.conf.include
    assert inbox_tasks.cleanup_inbox.name == entry["task"]
