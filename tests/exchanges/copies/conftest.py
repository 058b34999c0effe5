"""Shared by the exchange-copy tests: a world whose followers can be bound to
a linked account on the exchange double, the submitter's queue recorded
instead of sent, and the exchange's answers recorded as the submitter does."""

from decimal import Decimal

import pytest
from django.utils import timezone

from copytrading import enqueue
from copytrading.exchanges import crypto
from copytrading.exchanges.models import ExchangeAccount, ExchangeAccountStatus, ExchangeOrder
from copytrading.exchanges.outcomes import OrderOutcome, record_outcomes
from copytrading.exchanges.submitter import SUBMIT_TASK
from followers.services import subscription_create
from tests.copytrading.world import World
from tests.exchange_double.fixtures import API_KEY, API_SECRET
from tests.factories import UserFactory

D = Decimal


@pytest.fixture
def submitted(monkeypatch):
    """What the venue queues for the submitter (``exchange.submit`` with a
    list of ExchangeOrder ids), recorded instead of sent."""
    sent: list[list[int]] = []

    class Recorder:
        def delay(self, ids):
            sent.append(list(ids))

    real = enqueue.task
    monkeypatch.setattr(enqueue, "task", lambda name: Recorder() if name == SUBMIT_TASK else real(name))
    return sent


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks, exchange_settings, submitted):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 2
    return World(instruments, django_capture_on_commit_callbacks)


def linked_account(user, *, exchange: str = "binanceusdm") -> ExchangeAccount:
    """A linked account on the exchange double, as the link service stores it."""
    now = timezone.now()
    return ExchangeAccount.objects.create(
        user=user, exchange=exchange, label="futures", api_key_encrypted=crypto.encrypt(API_KEY),
        secret_encrypted=crypto.encrypt(API_SECRET), api_key_hint=crypto.mask(API_KEY),
        api_key_fingerprint=crypto.fingerprint(exchange, API_KEY), status=ExchangeAccountStatus.VALID,
        created_at=now, last_validated_at=now,
    )  # fmt: skip


def bound_follower(portfolio, *, amount: str = "5000", multiplier: str = "0.5"):
    from copytrading.services import wallet_deposit

    user = UserFactory()
    wallet_deposit(user=user, amount=D(amount))
    linked = linked_account(user)
    return subscription_create(
        follower=user, portfolio=portfolio, amount=D(amount), multiplier=D(multiplier), exchange_account_id=linked.pk
    )


def outcome(row: ExchangeOrder, status: str, filled: str = "0", average: str | None = None, **more) -> OrderOutcome:
    return OrderOutcome(
        row.client_order_id, status, timezone.now(), exchange_order_id=f"x{row.pk}", filled_quantity=D(filled),
        average_price=D(average) if average else None, **more,
    )  # fmt: skip


def tell(world, *outcomes_):
    """The exchange's answers, recorded as the submitter records them (on-commit dispatches run)."""
    with world.capture(execute=True):
        return record_outcomes(list(outcomes_))


def exchange_orders_of(sub) -> list[ExchangeOrder]:
    return list(ExchangeOrder.objects.filter(subscription_id=sub.pk).order_by("pk"))
