"""The outbox relay and the reconciler: a lost dispatch or a lost chunk
message delays a propagation, never loses it."""

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest

from copytrading import events, propagation, services, tasks
from copytrading.models import ChunkStatus, Execution, LeaderEvent, LeaderEventStatus, PropagationChunk
from followers.services import subscription_create
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place


@pytest.fixture
def portfolio_with_followers(instruments):
    leader = services.user_register(username="relay-leader", password="relay-pass-123")
    services.wallet_deposit(user=leader, amount=Decimal("50000"))
    portfolio = portfolio_create(leader=leader, name="Relay")
    portfolio_fund(portfolio=portfolio, amount=Decimal("20000"))
    for n in range(3):
        follower = services.user_register(username=f"relay-f{n}", password="relay-pass-123")
        services.wallet_deposit(user=follower, amount=Decimal("2000"))
        subscription_create(follower=follower, portfolio=portfolio, amount=Decimal("1000"), multiplier=Decimal("1"))
    return portfolio


def _order(portfolio, side="buy"):
    (event,) = portfolio_order_place(
        portfolio=portfolio, symbol="BTC/USDT:USDT", side=side, quantity=Decimal("0.01"), leverage=5
    )
    return event


@pytest.mark.django_db(transaction=True)
def test_relay_dispatches_an_event_whose_enqueue_was_lost(portfolio_with_followers):
    with mock.patch.object(events, "dispatch", lambda event_id: None):  # crash between commit and enqueue
        event = _order(portfolio_with_followers)
    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.PENDING
    assert not Execution.objects.filter(event=event).exists()

    assert propagation.relay_undispatched(older_than=timedelta(seconds=10)) == 0  # too young to relay
    assert propagation.relay_undispatched(older_than=timedelta(0)) == 1

    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.DONE
    assert Execution.objects.filter(event=event, outcome="COPIED").count() == 3


@pytest.mark.django_db(transaction=True)
def test_relay_sends_only_the_head_of_each_portfolio_queue(portfolio_with_followers):
    with mock.patch.object(events, "dispatch", lambda event_id: None):
        first = _order(portfolio_with_followers, "buy")
        second = _order(portfolio_with_followers, "buy")
    sent = []
    with mock.patch.object(propagation, "dispatch", sent.append):
        assert propagation.relay_undispatched(older_than=timedelta(0)) == 1
    assert sent == [first.pk]
    # Delivering the later one first does nothing: it waits for its predecessor.
    assert propagation.event_start(second.pk) == []
    assert LeaderEvent.objects.get(pk=second.pk).status == LeaderEventStatus.PENDING
    # The head's completion dispatches the next one.
    tasks.propagate_event(first.pk)
    assert LeaderEvent.objects.get(pk=second.pk).status == LeaderEventStatus.DONE
    assert Execution.objects.filter(event=second).count() == 3


@pytest.mark.django_db(transaction=True)
def test_reconciler_reruns_a_chunk_whose_message_was_lost(portfolio_with_followers):
    with mock.patch.object(tasks.propagate_chunk, "delay", lambda chunk_id: None):  # chunk messages lost
        event = _order(portfolio_with_followers)
    chunk = PropagationChunk.objects.get(event=event)
    assert chunk.status == ChunkStatus.PENDING
    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.PROPAGATING

    assert tasks.reconcile_propagations(stale_after_seconds=3600)["resumed_chunks"] == 0
    result = tasks.reconcile_propagations(stale_after_seconds=0)
    assert result["resumed_chunks"] == 1

    assert PropagationChunk.objects.get(pk=chunk.pk).status == ChunkStatus.DONE
    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.DONE
    assert Execution.objects.filter(event=event).count() == 3
    # Running it again changes nothing.
    tasks.reconcile_propagations(stale_after_seconds=0)
    assert Execution.objects.filter(event=event).count() == 3
