"""Read endpoints a client missed (issue #11, point 15): a follower's own
mirror orders, and a leader's own event history with per-event outcomes."""

from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext

from copytrading.events import leader_event_replay
from copytrading.models import Execution, Order
from followers.services import subscription_pause
from tests.copytrading.world import ETH_PERP
from tests.followers.conftest import client_for

D = Decimal


# --- GET subscriptions/{id}/orders -------------------------------------------------------


def test_a_follower_sees_the_resting_and_past_mirror_orders_of_their_copy(world):
    portfolio = world.leader()
    sub = world.subscribe(portfolio)
    other = world.subscribe(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    placed = world.limit(portfolio, ETH_PERP, "buy", "2", "3100")
    follower = client_for(sub.follower)
    url = f"/api/v1/subscriptions/{sub.pk}/orders"

    body = follower.get(url).json()
    mine = Order.objects.filter(account_id=sub.copy_account_id).order_by("-id")
    assert [o["id"] for o in body["results"]] == [o.pk for o in mine] and body["next_cursor"] is None
    resting, filled = body["results"]
    # The resting mirror limit: the leader's price, half the size, half the margin reserved.
    assert {k: resting[k] for k in ("symbol", "side", "order_type", "status", "price", "quantity", "reserved")} == {
        "symbol": ETH_PERP,
        "side": "buy",
        "order_type": "limit",
        "status": "open",
        "price": "3100.00000000",
        "quantity": "1.00000000",
        "reserved": "310.00000000",
    }
    assert resting["leader_order"] == placed.payload["leader_order_id"]
    assert (filled["order_type"], filled["status"], filled["quantity"], filled["reserved"]) == (
        "market",
        "filled",
        "0.50000000",
        "0.00000000",
    )
    # Only this copy's orders, and a status filter for the resting ones.
    assert not {o["id"] for o in body["results"]} & set(
        Order.objects.filter(account_id=other.copy_account_id).values_list("id", flat=True)
    )
    assert [o["id"] for o in follower.get(url, {"status": "open"}).json()["results"]] == [resting["id"]]
    bad = follower.get(url, {"status": "resting"})
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (400, "INVALID_CHOICE", "status")
    # Paged like every list.
    first = follower.get(url, {"limit": 1}).json()
    second = follower.get(url, {"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [o["id"] for o in first["results"] + second["results"]] == [resting["id"], filled["id"]]
    assert second["next_cursor"] is None


def test_another_users_copy_orders_are_not_found(world):
    portfolio = world.leader()
    sub = world.subscribe(portfolio)
    world.limit(portfolio, ETH_PERP, "buy", "2", "3100")
    intruder = world.subscribe(portfolio).follower
    for reader in (client_for(intruder), client_for(portfolio.leader)):
        response = reader.get(f"/api/v1/subscriptions/{sub.pk}/orders")
        assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
        assert b"3100" not in response.content


# --- GET portfolios/{id}/events ------------------------------------------------------------


def test_a_leader_sees_each_event_with_its_status_and_outcome_counts(world):
    portfolio = world.leader()
    copier = world.subscribe(portfolio)
    paused = world.subscribe(portfolio)
    subscription_pause(subscription=paused)
    # 100 in the wallet cannot hold the margin of a 2 ETH mirror at 10x (640).
    world.subscribe(portfolio, deposit="100", amount="100", multiplier=D("1"))
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    limit = world.limit(portfolio, ETH_PERP, "buy", "1", "3000")
    leader = client_for(portfolio.leader)

    body = leader.get(f"/api/v1/portfolios/{portfolio.pk}/events").json()
    assert body["next_cursor"] is None
    latest, first = body["results"]
    assert (latest["id"], latest["seq"], latest["kind"]) == (limit.pk, limit.seq, "limit_placed")
    assert (first["id"], first["seq"], first["kind"]) == (opened.pk, opened.seq, "position_open")
    assert first["seq"] < latest["seq"]
    for event in (first, latest):
        assert event["status"] == "done"
        times = [
            datetime.fromisoformat(event[k].replace("Z", "+00:00"))
            for k in ("created_at", "started_at", "completed_at")
        ]
        assert times == sorted(times)
        assert event["chunks"] == {"done": 1, "total": 1}
    assert first["outcomes"] == {"copied": 1, "skipped": 1, "rejected": 1, "failed": 0}
    assert first["payload"]["leader_position_id"] == opened.payload["leader_position_id"]
    # The counts are the execution log's.
    for event in (first, latest):
        rows = Execution.objects.filter(event_id=event["id"])
        assert {o: rows.filter(outcome=o.upper()).count() for o in event["outcomes"]} == event["outcomes"]
    assert copier.pk != paused.pk

    # A staff replay of a finished event serves nobody twice and counts nobody twice.
    with world.capture(execute=True):
        assert leader_event_replay(event_id=opened.pk) == 1
    again = leader.get(f"/api/v1/portfolios/{portfolio.pk}/events").json()["results"][1]
    assert (again["status"], again["chunks"], again["outcomes"]) == ("done", first["chunks"], first["outcomes"])
    assert Execution.objects.filter(event_id=opened.pk).count() == 3


def test_an_event_page_is_a_constant_number_of_queries(world):
    portfolio = world.leader()
    world.subscribe(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    leader = client_for(portfolio.leader)
    url = f"/api/v1/portfolios/{portfolio.pk}/events"
    with CaptureQueriesContext(connection) as one:
        assert len(leader.get(url).json()["results"]) == 1
    for price in range(3000, 3010):
        world.limit(portfolio, ETH_PERP, "buy", "0.1", str(price))
    with CaptureQueriesContext(connection) as eleven:
        assert len(leader.get(url).json()["results"]) == 11
    assert len(eleven.captured_queries) == len(one.captured_queries)


def test_another_leaders_event_history_is_not_found(world):
    portfolio = world.leader()
    sub = world.subscribe(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    other_leader = world.leader().leader
    for reader in (client_for(other_leader), client_for(sub.follower)):
        response = reader.get(f"/api/v1/portfolios/{portfolio.pk}/events")
        assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
        assert b"position_open" not in response.content
