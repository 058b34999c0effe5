"""Every trigger of SPEC §8 produces its notification once: replays of the
same subscription, close, accrual, execution or withdrawal add nothing."""

from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from copytrading import decisions, propagation
from copytrading.models import Execution, Notification, PropagationChunk
from copytrading.venue import ClosedPosition
from fees.services import fees_settle, leader_withdrawal_create
from followers import fee_hooks, notify_hooks
from followers.services import subscription_unfollow, subscription_withdraw
from tests.copytrading.world import ETH_PERP, World
from tests.fees.conftest import FeeWorld

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 10
    return World(instruments, django_capture_on_commit_callbacks)


@pytest.fixture
def fee_world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return FeeWorld(django_capture_on_commit_callbacks)


def kinds(user_id) -> list[str]:
    return list(Notification.objects.filter(user_id=user_id).order_by("pk").values_list("kind", flat=True))


def test_subscribing_and_unfollowing_tell_both_sides_once(world):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    leader = portfolio.leader_id
    assert kinds(sub.follower_id) == ["subscribed"]
    assert kinds(leader) == ["new_subscriber"]
    note = Notification.objects.get(user_id=sub.follower_id)
    assert portfolio.name in note.title and note.data["subscription_id"] == sub.pk

    subscription_unfollow(subscription=sub)
    subscription_unfollow(subscription=sub)  # a retry: a no-op
    assert kinds(sub.follower_id) == ["subscribed", "unsubscribed"]
    assert kinds(leader) == ["new_subscriber", "subscriber_left"]


def test_a_copy_rejected_for_margin_is_a_critical_error_once_and_emailed(world, django_capture_on_commit_callbacks):
    portfolio = world.leader()
    rich = world.follower(portfolio)
    poor = world.follower(portfolio, amount="159.99")  # the mirror needs 160
    mail.outbox.clear()
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "1")

    (note,) = Notification.objects.filter(user_id=poor.follower_id, kind="copy_error")
    assert note.severity == "critical" and note.dedup_key == f"exec:{event.pk}:{poor.pk}"
    assert note.data["reason_code"] == "INSUFFICIENT_MARGIN"
    assert not Notification.objects.filter(user_id=rich.follower_id, kind__in=["copy_error", "trade_copied"]).exists()
    assert [m.to for m in mail.outbox] == [[note.user.email]]

    # A replay of the chunk (set back to pending by hand) serves nobody twice.
    PropagationChunk.objects.filter(event=event).update(status="pending")
    with django_capture_on_commit_callbacks(execute=True):
        for chunk in PropagationChunk.objects.filter(event=event):
            propagation.chunk_propagate(chunk.pk)
    assert Notification.objects.filter(kind="copy_error").count() == 1
    assert len(mail.outbox) == 1


def test_a_failed_copy_is_a_critical_error(world, monkeypatch):
    portfolio = world.leader()
    good, bad = world.follower(portfolio), world.follower(portfolio)
    real = decisions.decide

    def decide(event, target, **kwargs):
        if target.subscription_id == bad.pk:
            raise RuntimeError("a bug in one follower's row")
        return real(event, target, **kwargs)

    monkeypatch.setattr(decisions, "decide", decide)
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    assert Execution.objects.get(event=event, subscription_id=bad.pk).outcome == "FAILED"
    (note,) = Notification.objects.filter(kind="copy_error")
    assert (note.user_id, note.data["reason_code"]) == (bad.follower_id, "INTERNAL_ERROR")
    assert not Notification.objects.filter(user_id=good.follower_id, kind="copy_error").exists()


def test_trade_copied_is_off_unless_the_platform_turns_it_on(world, settings):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    assert "trade_copied" not in kinds(sub.follower_id)
    settings.NOTIFY_TRADE_COPIED = True
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    (note,) = Notification.objects.filter(user_id=sub.follower_id, kind="trade_copied")
    assert note.dedup_key == f"exec:{event.pk}:{sub.pk}" and note.severity == "low" and not note.hidden


def test_the_fan_out_pays_a_constant_number_of_queries_for_its_notes(world):
    portfolio = world.leader()
    subs = [world.follower(portfolio) for _ in range(12)]
    few = [propagation.ExecutionOutcome(s.pk, decisions.FAILED, decisions.INTERNAL_ERROR) for s in subs[:2]]
    many = [propagation.ExecutionOutcome(s.pk, decisions.FAILED, decisions.INTERNAL_ERROR) for s in subs]

    class Event:
        pk, portfolio_id = 10**9, portfolio.pk

    with CaptureQueriesContext(connection) as a:
        notify_hooks.notify_executions(Event, few)
    Event.pk += 1
    with CaptureQueriesContext(connection) as b:
        notify_hooks.notify_executions(Event, many)
    assert len(a.captured_queries) == len(b.captured_queries) == 3  # recipients, preferences, one INSERT


def test_closed_in_profit_and_profit_share_credited_once(fee_world):
    portfolio = fee_world.leader(share="20.00")
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3000", "3300")
    (closed,) = Notification.objects.filter(user_id=sub.follower_id, kind="closed_in_profit")
    assert D(closed.data["pnl"]) > 0 and closed.dedup_key == f"closed:{closed.data['position_id']}"

    # The venue's close listener called again for the same close: nothing new.
    fee_hooks.accrue_closed_mirrors(
        [ClosedPosition(closed.data["position_id"], sub.copy_account_id, D(closed.data["pnl"]), sub.pk)]
    )
    assert Notification.objects.filter(kind="closed_in_profit").count() == 1

    fees_settle()
    fees_settle()
    (credited,) = Notification.objects.filter(user_id=portfolio.leader_id, kind="profit_share_credited")
    assert D(credited.data["amount"]) > 0

    # ... and the leader takes it out: "withdrawal done", once per withdrawal.
    leader = portfolio.leader
    leader_withdrawal_create(leader=leader, portfolio_id=portfolio.pk, idempotency_key="w1")
    leader_withdrawal_create(leader=leader, portfolio_id=portfolio.pk, idempotency_key="w1")
    assert kinds(leader).count("leader_withdrawal_done") == 1


def test_a_loss_notifies_no_profit(fee_world):
    portfolio = fee_world.leader(share="20.00")
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3000", "2900")
    assert "closed_in_profit" not in kinds(sub.follower_id)


def test_a_copy_wallet_withdrawal_is_notified_once(world):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    subscription_withdraw(subscription=sub, amount=D("100"), idempotency_key="k")
    subscription_withdraw(subscription=sub, amount=D("100"), idempotency_key="k")
    (note,) = Notification.objects.filter(user_id=sub.follower_id, kind="withdrawal_done")
    assert note.data["amount"] == "100"
