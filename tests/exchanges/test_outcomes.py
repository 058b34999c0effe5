"""Recording what an exchange said about the service's orders: an outcome
only moves an order forward, reading an order twice is harmless, and the
engine hears only of outcomes that changed something."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from copytrading.exchanges import outcomes
from copytrading.exchanges.models import ExchangeOrder
from copytrading.exchanges.models import ExchangeOrderStatus as S
from copytrading.exchanges.outcomes import OrderOutcome, record_outcomes
from tests.exchanges.test_admin import exchange_account_row
from tests.factories import UserFactory


@pytest.fixture
def order(db):
    account = exchange_account_row(UserFactory(username="owner"))
    return ExchangeOrder.objects.create(
        exchange_account=account, client_order_id="ct-1-2", symbol="BTC/USDT:USDT", side="buy",
        quantity=Decimal("0.010"), decided_at=timezone.now(),
    )  # fmt: skip


@pytest.fixture
def heard(monkeypatch):
    calls = []
    monkeypatch.setattr(outcomes, "_engine_appliers", [lambda moved: calls.append([o.status for _, o in moved])])
    return calls


def test_an_outcome_moves_an_order_forward_and_stamps_its_times(order, heard):
    at = timezone.now()
    record_outcomes([OrderOutcome("ct-1-2", S.ACKNOWLEDGED, at, exchange_order_id="9001")])
    filled = OrderOutcome("ct-1-2", S.FILLED, at + timedelta(seconds=1), "9001", Decimal("0.010"), Decimal("50000"))
    record_outcomes([filled])

    order.refresh_from_db()
    assert (order.status, order.exchange_order_id, order.filled_quantity) == (S.FILLED, "9001", Decimal("0.010"))
    assert order.average_price == Decimal("50000")
    assert order.acknowledged_at == at and order.filled_at == at + timedelta(seconds=1)
    assert heard == [[S.ACKNOWLEDGED], [S.FILLED]]


def test_a_late_or_repeated_answer_changes_nothing(order, heard):
    at = timezone.now()
    record_outcomes([OrderOutcome("ct-1-2", S.FILLED, at, "9001", Decimal("0.010"), Decimal("50000"))])
    moved = record_outcomes(
        [
            OrderOutcome("ct-1-2", S.ACKNOWLEDGED, at, "9001"),
            OrderOutcome("ct-1-2", S.FILLED, at, "9001", Decimal("0.010"), Decimal("50000")),
        ]
    )

    assert moved == []
    assert heard == [[S.FILLED]]


def test_more_filled_quantity_at_the_same_stage_is_news(order, heard):
    at = timezone.now()
    record_outcomes([OrderOutcome("ct-1-2", S.PARTIALLY_FILLED, at, "9001", Decimal("0.004"), Decimal("50000"))])
    record_outcomes([OrderOutcome("ct-1-2", S.PARTIALLY_FILLED, at, "9001", Decimal("0.004"), Decimal("50000"))])
    record_outcomes([OrderOutcome("ct-1-2", S.PARTIALLY_FILLED, at, "9001", Decimal("0.007"), Decimal("50010"))])

    order.refresh_from_db()
    assert order.filled_quantity == Decimal("0.007") and order.filled_at is None
    assert heard == [[S.PARTIALLY_FILLED], [S.PARTIALLY_FILLED]]


def test_a_rejection_keeps_its_code_and_a_short_message(order, heard):
    record_outcomes(
        [OrderOutcome("ct-1-2", S.REJECTED, timezone.now(), reject_code="EXCHANGE_INSUFFICIENT_FUNDS",
                      reject_message="x" * 1000)]
    )  # fmt: skip

    order.refresh_from_db()
    assert order.reject_code == "EXCHANGE_INSUFFICIENT_FUNDS" and len(order.reject_message) == 300


def test_the_database_refuses_a_second_order_with_the_same_client_id(order):
    with pytest.raises(IntegrityError), transaction.atomic():
        ExchangeOrder.objects.create(
            exchange_account=order.exchange_account, client_order_id="ct-1-2", symbol="BTC/USDT:USDT",
            side="buy", quantity=Decimal("1"), decided_at=timezone.now(),
        )  # fmt: skip
