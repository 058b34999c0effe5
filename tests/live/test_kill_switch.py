"""The kill switch on a real fan-out (services, database, eager Celery): what
halting skips (new risk: opens, increases, buys, new limit orders, as
COPYING_HALTED with the staff's reason), what still goes through (closes,
reduces, sells, TP/SL, a resting limit's cancel), per portfolio or for all,
what followers see and are told, and that resuming copies the next event."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from copytrading import decisions, live
from copytrading.live import services
from copytrading.models import Execution, Holding, PositionStatus
from copytrading.notifications.models import Notification
from followers.services import subscription_pause
from tests.copytrading.world import ETH_PERP, mirror_orders_of, mirrors_of, outcomes
from tests.factories import token_for

pytestmark = pytest.mark.django_db
D = Decimal
HALTED = (decisions.SKIPPED, decisions.COPYING_HALTED)
ETH_SPOT = "ETH/USDT"


def details(event) -> dict[int, str]:
    return dict(Execution.objects.filter(event=event).values_list("subscription_id", "reason_detail"))


def test_a_global_halt_skips_every_follower_s_open_with_the_reason(world):
    one, two = world.leader(), world.leader()
    followers = [world.follower(one), world.follower(one), world.follower(one), world.follower(two)]

    services.halt_all(reason="Market data is wrong; we are checking.")
    (first,) = world.trade(one, ETH_PERP, "buy", "1")
    (second,) = world.trade(two, ETH_PERP, "buy", "1")

    assert outcomes(first) == {f.pk: HALTED for f in followers[:3]}  # two chunks of this event
    assert outcomes(second) == {followers[3].pk: HALTED}
    assert set(details(first).values()) == {"Market data is wrong; we are checking."}
    assert all(not mirrors_of(f).exists() for f in followers)


def test_a_portfolio_halt_leaves_the_other_portfolios_copying(world):
    halted, other = world.leader(), world.leader()
    a, b = world.follower(halted), world.follower(halted)
    c = world.follower(other)

    services.halt_portfolio(halted.pk, reason="The leader's account is under review.")
    (stopped,) = world.trade(halted, ETH_PERP, "buy", "1")
    (copied,) = world.trade(other, ETH_PERP, "buy", "1")

    assert outcomes(stopped) == {a.pk: HALTED, b.pk: HALTED}
    assert details(stopped) == {
        a.pk: "The leader's account is under review.",
        b.pk: "The leader's account is under review.",
    }
    assert outcomes(copied) == {c.pk: (decisions.COPIED, "")}
    assert details(copied) == {c.pk: ""}
    assert mirrors_of(c).count() == 1


def test_resume_copies_the_next_event(world):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    services.halt_portfolio(portfolio.pk, reason="drill")
    (skipped,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    assert outcomes(skipped) == {sub.pk: HALTED}

    services.resume_portfolio(portfolio.pk)
    (copied,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    assert outcomes(copied) == {sub.pk: (decisions.COPIED, "")}
    (mirror,) = mirrors_of(sub)
    assert mirror.quantity == D("0.5")  # this trade's share only: the skipped one is not caught up


def test_closes_reduces_and_tpsl_still_follow_the_leader_while_halted(world):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    leader_position_id = opened.data.leader_position_id
    (mirror,) = mirrors_of(sub)
    assert mirror.quantity == D("1")

    services.halt_all(reason="drill")
    (increase,) = world.trade(portfolio, ETH_PERP, "buy", "2")  # adds risk: halted
    assert outcomes(increase) == {sub.pk: HALTED}
    tpsl = world.tpsl(portfolio, leader_position_id, take_profit="4000", stop_loss=None)
    assert outcomes(tpsl) == {sub.pk: (decisions.COPIED, "")}
    reduce = world.close(portfolio, leader_position_id, "2")  # half of the leader's 4
    assert outcomes(reduce) == {sub.pk: (decisions.COPIED, "")}
    mirror.refresh_from_db()
    assert (mirror.quantity, mirror.take_profit) == (D("0.5"), D("4000"))
    close = world.close(portfolio, leader_position_id)
    assert outcomes(close) == {sub.pk: (decisions.COPIED, "")}
    mirror.refresh_from_db()
    assert mirror.status == PositionStatus.CLOSED


def test_limit_orders_while_halted_new_ones_skipped_resting_ones_still_cancelled(world):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    resting = world.limit(portfolio, ETH_PERP, "buy", "1", "3000")
    (mirror_limit,) = mirror_orders_of(sub)

    services.halt_portfolio(portfolio.pk, reason="drill")
    new = world.limit(portfolio, ETH_PERP, "buy", "1", "2900")
    assert outcomes(new) == {sub.pk: HALTED}
    assert mirror_orders_of(sub).count() == 1
    cancel = world.cancel(portfolio, resting.data.leader_order_id)
    assert outcomes(cancel) == {sub.pk: (decisions.COPIED, "")}
    mirror_limit.refresh_from_db()
    assert mirror_limit.status == "cancelled"


def test_spot_buys_are_halted_sells_go_through(world):
    portfolio = world.leader(mode="spot")
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH_SPOT, "buy", "2", leverage=1)
    assert Holding.objects.get(account_id=sub.copy_account_id, asset="ETH").quantity == D("1")

    services.halt_all(reason="drill")
    (buy,) = world.trade(portfolio, ETH_SPOT, "buy", "2", leverage=1)
    assert outcomes(buy) == {sub.pk: HALTED}
    (sell,) = world.trade(portfolio, ETH_SPOT, "sell", "2", leverage=1)  # half of the leader's 4
    assert outcomes(sell) == {sub.pk: (decisions.COPIED, "")}
    assert Holding.objects.get(account_id=sub.copy_account_id, asset="ETH").quantity == D("0.5")


def test_a_follower_who_paused_keeps_their_own_reason(world):
    portfolio = world.leader()
    active, paused = world.follower(portfolio), world.follower(portfolio)
    subscription_pause(subscription=paused)
    services.halt_all(reason="drill")
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    assert outcomes(event) == {active.pk: HALTED, paused.pk: (decisions.SKIPPED, decisions.SUBSCRIPTION_PAUSED)}
    assert details(event)[paused.pk] == ""


def test_followers_are_notified_once_when_a_halt_starts(world, django_capture_on_commit_callbacks):
    halted, other = world.leader(), world.leader()
    a = world.follower(halted)
    b = world.follower(halted)
    subscription_pause(subscription=b)  # paused copies are told too: their positions are still followed
    c = world.follower(other)

    with django_capture_on_commit_callbacks() as after_commit:
        services.halt_portfolio(halted.pk, reason="Leader under review")
    # The switch is on before anyone is told: the notes are written after the commit.
    assert live.current().halt_reason(halted.pk) == "Leader under review"
    assert not Notification.objects.filter(kind="copying_halted").exists()
    for callback in after_commit:
        callback()
    with django_capture_on_commit_callbacks(execute=True):
        services.halt_portfolio(halted.pk, reason="again")  # already halted: nothing new
    notes = Notification.objects.filter(kind="copying_halted").order_by("user_id")
    assert [(n.user_id, n.data["reason"], n.data["subscription_id"]) for n in notes] == sorted(
        [(a.follower_id, "Leader under review", a.pk), (b.follower_id, "Leader under review", b.pk)]
    )
    assert "Leader under review" in notes[0].body and notes[0].severity == "high"

    with django_capture_on_commit_callbacks(execute=True):
        services.halt_all(reason="Platform maintenance")
    everyone = Notification.objects.filter(kind="copying_halted", data__reason="Platform maintenance")
    assert sorted(everyone.values_list("user_id", flat=True)) == sorted([a.follower_id, b.follower_id, c.follower_id])


def test_the_subscription_api_shows_the_halt_while_it_applies(world):
    halted, other = world.leader(), world.leader()
    sub = world.follower(halted)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(sub.follower)}")
    other_sub = world.follower(other)
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(other_sub.follower)}")

    def seen(c, pk):
        detail = c.get(f"/api/v1/subscriptions/{pk}").json()
        (row,) = c.get("/api/v1/subscriptions").json()["results"]
        assert (row["copying_halted"], row["copying_halted_reason"]) == (
            detail["copying_halted"],
            detail["copying_halted_reason"],
        )
        return detail["copying_halted"], detail["copying_halted_reason"]

    assert seen(client, sub.pk) == (False, None)
    services.halt_portfolio(halted.pk, reason="Leader under review")
    assert seen(client, sub.pk) == (True, "Leader under review")
    assert seen(other_client, other_sub.pk) == (False, None)
    services.halt_all(reason="Maintenance")
    assert seen(other_client, other_sub.pk) == (True, "Maintenance")
    services.resume_all()
    services.resume_portfolio(halted.pk)
    assert seen(client, sub.pk) == (False, None)


def test_the_fan_out_reads_the_settings_once_per_chunk_at_most(world, monkeypatch):
    portfolio = world.leader()
    for _ in range(6):  # 3 chunks of 2
        world.follower(portfolio)
    loads = []
    real = live.load
    monkeypatch.setattr(live, "load", lambda: loads.append(1) or real())
    live.invalidate()
    world.trade(portfolio, ETH_PERP, "buy", "1")
    assert len(loads) == 1  # the first chunk read it; the others found it cached
