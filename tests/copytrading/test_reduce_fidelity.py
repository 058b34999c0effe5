"""Copy fidelity on reduces, closes and sells (issue #12, points 9 and 10).

A reduce used to travel as a rounded quotient: 0.78 of 3.13 ETH became
0.2492012779552715654952076677, and a mirror of 3.13 at progressive 1.0 was
reduced by floor(3.13 x 0.24920127795…) = floor(0.77999…) = 0.77, then closed
2.36 against the leader's 2.35. Events now carry the leader's quantity and
its size before; a follower's share is mirror x quantity / before, divided
once and floored to the step (decisions.Share). Events recorded before
carry only the fraction and are still sized from it.

Every execution row says what the leader did: its quantity, and for reduces,
closes and sells the share (quantity / before, rounded to 10 places for
people; sizing never reads it)."""

from decimal import Decimal

import pytest

from copytrading import tasks
from copytrading.events import leader_event_replay
from copytrading.ledger import ledger_check
from copytrading.models import Execution, Holding, LeaderEvent, Position
from copytrading.money import FRACTION_PLACES
from portfolios import services as portfolio_services
from tests.acceptance.test_bad_input import client_for
from tests.copytrading.world import BTC_PERP, ETH_PERP, World, mirror_orders_of, mirrors_of

D = Decimal
ETH_SPOT = "ETH/USDT"  # step 0.0001


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 3
    return World(instruments, django_capture_on_commit_callbacks)


def _leader_position(portfolio, symbol: str) -> Position | None:
    return Position.objects.filter(
        account_id=portfolio.trading_account_id, instrument__symbol=symbol, status="open"
    ).first()


def _execution(event: LeaderEvent, sub) -> tuple:
    e = Execution.objects.get(event=event, subscription_id=sub.pk)
    return e.outcome, e.follower_quantity, e.leader_quantity, e.leader_fraction


# --- margin: the reproduction, table-driven ------------------------------------------------

# (symbol, multiplier, opened, the leader's steps, what the follower's execution row shows for each:
#  (follower quantity, leader quantity, leader fraction as shown)). A step is ("close", quantity) through
# the position-close endpoint (None: all of it) or ("sell", quantity): an opposite market order.
MARGIN_CASES = {
    "ETH 3.13 at 1.0: a partial close of 0.78 reduces the mirror 0.78, the close 2.35": (
        ETH_PERP, "1", "3.13", [("close", "0.78"), ("close", None)],
        [("0.78", "0.78", "0.2492012780"), ("2.35", "2.35", "1")],
    ),
    "ETH 3.13 at 1.0: the same through opposite market orders": (
        ETH_PERP, "1", "3.13", [("sell", "0.78"), ("sell", "2.35")],
        [("0.78", "0.78", "0.2492012780"), ("2.35", "2.35", "1")],
    ),
    "BTC 0.137 at 1.0: a partial close of 0.070 reduces the mirror 0.070 (was 0.069)": (
        BTC_PERP, "1", "0.137", [("close", "0.070"), ("close", None)],
        [("0.070", "0.070", "0.5109489051"), ("0.067", "0.067", "1")],
    ),
    "ETH 3.13 at 0.5: floor(1.56 x 0.78 / 3.13 = 0.38875…) = 0.38, then the rest, 1.18": (
        ETH_PERP, "0.5", "3.13", [("close", "0.78"), ("close", None)],
        [("0.38", "0.78", "0.2492012780"), ("1.18", "2.35", "1")],
    ),
    "ETH 0.10 at 0.5: a mirror of 0.05 reduced by 0.03 of 0.10 gets floor(0.015) = 0.01, never more": (
        ETH_PERP, "0.5", "0.10", [("close", "0.03"), ("close", None)],
        [("0.01", "0.03", "0.3"), ("0.04", "0.07", "1")],
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("symbol", "multiplier", "opened", "steps", "expected"), MARGIN_CASES.values(), ids=list(MARGIN_CASES)
)
def test_a_mirror_is_reduced_by_the_exact_share_of_the_leaders_reduce(
    world, symbol, multiplier, opened, steps, expected
):
    portfolio = world.leader()
    sub = world.follower(portfolio, amount="20000", multiplier=multiplier)
    world.trade(portfolio, symbol, "buy", opened, leverage=10)
    (mirror,) = mirrors_of(sub)
    mirror_before = mirror.quantity

    for (how, quantity), (follower_qty, leader_qty, fraction) in zip(steps, expected, strict=True):
        if how == "close":
            leader = _leader_position(portfolio, symbol)
            (event,) = [world.close(portfolio, leader.pk, quantity)]
        else:
            (event,) = world.trade(portfolio, symbol, "sell", quantity, leverage=10)
        assert _execution(event, sub) == ("COPIED", D(follower_qty), D(leader_qty), D(fraction))
        # The event carries the leader's exact quantities; the fraction is for people.
        assert D(event.payload["quantity"]) == D(leader_qty)
        assert D(event.payload["quantity"]) / D(event.payload["quantity_before"]) == D(event.payload["fraction"])
        mirror_before -= D(follower_qty)
        leader = _leader_position(portfolio, symbol)
        open_mirror = mirrors_of(sub).filter(status="open").first()
        if multiplier == "1":  # at 1.0 the mirror is the leader's position, step after step
            assert (open_mirror.quantity if open_mirror else None) == (leader.quantity if leader else None)
        assert (open_mirror.quantity if open_mirror else D(0)) == mirror_before

    assert _leader_position(portfolio, symbol) is None
    assert not mirrors_of(sub).filter(status="open").exists()  # the leader's close closed it, dust and all
    assert ledger_check().ok


def test_a_leaders_limit_sell_reducing_the_position_reduces_the_mirror_by_the_same_quantity(world):
    """The match fills the leader's resting limit and its mirror together
    (matching.passes: mirror_limit_steps sizes the mirror's reduce), then the
    fill event's execution rows show the leader's reduce."""
    portfolio = world.leader()
    sub = world.follower(portfolio, amount="20000", multiplier="1")
    world.trade(portfolio, ETH_PERP, "buy", "3.13", leverage=10)
    placed = world.limit(portfolio, ETH_PERP, "sell", "0.78", "3300", leverage=10)
    (mirror_limit,) = mirror_orders_of(sub)
    assert mirror_limit.quantity == D("0.78")

    (filled,) = world.price(ETH_PERP, "3300")

    assert filled.kind == "position_reduce" and filled.payload["limit_order_id"] == placed.payload["leader_order_id"]
    (mirror,) = mirrors_of(sub)
    assert mirror.quantity == _leader_position(portfolio, ETH_PERP).quantity == D("2.35")
    e = Execution.objects.get(event=filled, subscription_id=sub.pk)
    # The mirror limit already filled with its leader: the event skips it, and says from what.
    assert (e.outcome, e.reason_code, e.leader_quantity, e.leader_fraction) == (
        "SKIPPED",
        "MIRROR_LIMIT_FILLED",
        D("0.78"),
        D("0.2492012780"),
    )
    assert ledger_check().ok


# --- spot --------------------------------------------------------------------------------

SPOT_CASES = {
    "3.13 ETH at 1.0: sell 0.78 (was 0.7799), then the rest": (
        "1", "3.13", ["0.78", "2.35"], [("0.78", "0.2492012780"), ("2.35", "1")],
    ),
    "3.13 ETH at 0.5: 1.565 x 0.78 / 3.13 is exactly 0.39 (was 0.3899), then all of the rest": (
        "0.5", "3.13", ["0.78", "2.35"], [("0.39", "0.2492012780"), ("1.175", "1")],
    ),
}  # fmt: skip


@pytest.mark.parametrize(("multiplier", "bought", "sells", "expected"), SPOT_CASES.values(), ids=list(SPOT_CASES))
def test_a_followers_spot_sell_is_the_exact_share_of_the_leaders_sell(world, multiplier, bought, sells, expected):
    portfolio = world.leader(mode="spot")
    sub = world.follower(portfolio, amount="20000", multiplier=multiplier)
    world.trade(portfolio, ETH_SPOT, "buy", bought)
    held = Holding.objects.get(account_id=sub.copy_account_id, asset="ETH").quantity

    for sold, (follower_qty, fraction) in zip(sells, expected, strict=True):
        (event,) = world.trade(portfolio, ETH_SPOT, "sell", sold)
        assert event.kind == "spot_sell"
        assert _execution(event, sub) == ("COPIED", D(follower_qty), D(sold), D(fraction))
        held -= D(follower_qty)
        assert Holding.objects.get(account_id=sub.copy_account_id, asset="ETH").quantity == held
    assert held == 0
    assert ledger_check().ok


def test_a_leaders_spot_limit_sell_rests_the_exact_share_of_each_holding(world):
    portfolio = world.leader(mode="spot")
    sub = world.follower(portfolio, amount="20000", multiplier="1")
    world.trade(portfolio, ETH_SPOT, "buy", "3.13")

    placed = world.limit(portfolio, ETH_SPOT, "sell", "0.78", "3300")

    assert (D(placed.payload["quantity"]), D(placed.payload["quantity_before"])) == (D("0.78"), D("3.13"))
    (mirror_limit,) = mirror_orders_of(sub)
    assert (mirror_limit.quantity, mirror_limit.reserved) == (D("0.78"), D("0.78"))  # was 0.7799
    assert _execution(placed, sub) == ("COPIED", D("0.78"), D("0.78"), D("0.2492012780"))
    world.price(ETH_SPOT, "3300")
    leader = Holding.objects.get(account_id=portfolio.trading_account_id, asset="ETH").quantity
    assert Holding.objects.get(account_id=sub.copy_account_id, asset="ETH").quantity == leader == D("2.35")
    assert ledger_check().ok


# --- events recorded before the quantities were carried -------------------------------------

OLD_PAYLOAD_DROPS = ("quantity", "quantity_before")


def _as_recorded_before(event: LeaderEvent) -> LeaderEvent:
    """The event as it was written before this change: no quantities, the fraction only."""
    payload = {k: v for k, v in event.payload.items() if k not in OLD_PAYLOAD_DROPS}
    if event.kind == "position_close":
        payload.pop("fraction")  # closes carried no fraction either
    LeaderEvent.objects.filter(pk=event.pk).update(payload=payload)
    event.refresh_from_db()
    return event


def _undispatched(capture, action):
    """Run the leader's action, keeping its event from propagating."""
    with capture(execute=False):
        return action()


def _propagate(world, event: LeaderEvent) -> None:
    with world.capture(execute=True):
        tasks.propagate_event(event.pk)


def test_old_fraction_only_events_still_replay_as_they_were_sized(world, django_capture_on_commit_callbacks):
    portfolio = world.leader()
    sub = world.follower(portfolio, amount="20000", multiplier="1")
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "3.13", leverage=10)
    position_id = opened.payload["leader_position_id"]

    reduce = _undispatched(
        django_capture_on_commit_callbacks,
        lambda: portfolio_services.portfolio_position_close(
            portfolio=portfolio, position_id=position_id, quantity=D("0.78")
        ),
    )
    reduce = _as_recorded_before(reduce)
    assert set(reduce.payload) >= {"fraction"} and "quantity_before" not in reduce.payload
    _propagate(world, reduce)

    # Sized from the stored fraction, as then: floor(3.13 x 0.24920127795…) = 0.77.
    assert _execution(reduce, sub) == ("COPIED", D("0.77"), None, D("0.2492012780"))
    assert mirrors_of(sub).get().quantity == D("2.36")

    close = _undispatched(
        django_capture_on_commit_callbacks,
        lambda: portfolio_services.portfolio_position_close(portfolio=portfolio, position_id=position_id),
    )
    close = _as_recorded_before(close)
    _propagate(world, close)
    # A close closes the whole mirror whatever the payload says; its share is all.
    assert _execution(close, sub) == ("COPIED", D("2.36"), None, D("1"))
    assert not mirrors_of(sub).filter(status="open").exists()

    # Replaying either event again changes nothing (one row per event and subscription).
    rows = Execution.objects.count()
    with world.capture(execute=True):
        for event in (reduce, close):
            assert leader_event_replay(event_id=event.pk) == 1
    assert Execution.objects.count() == rows
    assert ledger_check().ok


def test_an_old_fraction_only_spot_sell_still_sells_its_fraction(world, django_capture_on_commit_callbacks):
    portfolio = world.leader(mode="spot")
    sub = world.follower(portfolio, amount="20000", multiplier="1")
    world.trade(portfolio, ETH_SPOT, "buy", "3.13")

    sell = _undispatched(
        django_capture_on_commit_callbacks,
        lambda: portfolio_services.portfolio_order_place(
            portfolio=portfolio, symbol=ETH_SPOT, side="sell", quantity=D("0.78")
        ),
    )[0]
    sell = _as_recorded_before(sell)
    _propagate(world, sell)

    assert _execution(sell, sub) == ("COPIED", D("0.7799"), None, D("0.2492012780"))
    assert Holding.objects.get(account_id=sub.copy_account_id, asset="ETH").quantity == D("2.3501")
    assert ledger_check().ok


# --- what followers and staff see ----------------------------------------------------------


def test_the_executions_api_shows_the_leaders_quantity_and_share(world):
    portfolio = world.leader()
    sub = world.follower(portfolio, amount="20000", multiplier="1")
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "3.13", leverage=10)
    world.close(portfolio, opened.payload["leader_position_id"], "0.78")

    response = client_for(sub.follower).get(f"/api/v1/subscriptions/{sub.pk}/executions")

    assert response.status_code == 200, response.content
    rows = {r["event_kind"]: r for r in response.json()["results"]}
    reduce, opened_row = rows["position_reduce"], rows["position_open"]
    assert (D(reduce["leader_quantity"]), D(reduce["follower_quantity"])) == (D("0.78"), D("0.78"))
    assert reduce["leader_fraction"] == "0.2492012780"
    assert (D(opened_row["leader_quantity"]), opened_row["leader_fraction"]) == (D("3.13"), None)


def test_the_openapi_schema_describes_the_leader_fraction(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    execution = schema["components"]["schemas"]["Execution"]["properties"]
    assert {"leader_quantity", "leader_fraction"} <= set(execution)
    assert execution["leader_fraction"]["type"] == "string"
    assert execution["leader_fraction"].get("nullable") is True
    assert str(FRACTION_PLACES) in execution["leader_fraction"]["pattern"]


def test_the_admin_execution_log_shows_the_leaders_quantity_and_share(world, admin_client):
    portfolio = world.leader()
    sub = world.follower(portfolio, amount="20000", multiplier="1")
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "3.13", leverage=10)
    reduce = world.close(portfolio, opened.payload["leader_position_id"], "0.78")
    row = Execution.objects.get(event=reduce, subscription_id=sub.pk)

    listing = admin_client.get("/admin/copytrading/execution/", {"subscription_id": sub.pk})
    detail = admin_client.get(f"/admin/copytrading/execution/{row.pk}/change/")

    assert listing.status_code == detail.status_code == 200
    page = listing.content.decode()
    assert "Leader fraction" in page and "0.2492012780" in page
    assert "0.2492012780" in detail.content.decode() and "0.78000000" in detail.content.decode()


def test_an_open_row_carries_the_leaders_quantity_and_no_share(world):
    portfolio = world.leader()
    sub = world.follower(portfolio, amount="20000", multiplier="0.5")
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "1", leverage=10)
    assert _execution(opened, sub) == ("COPIED", D("0.5"), D("1"), None)
