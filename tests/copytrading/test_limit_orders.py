"""Limit orders: the leader's rests until the mark crosses, mirrors rest at the
same price, re-price and cancel follow, and a fill reaches each follower once."""

from decimal import Decimal

import pytest

from copytrading import tasks
from copytrading.ledger import ledger_check
from copytrading.models import Execution, LeaderEvent, LeaderEventStatus, Order, Position, PositionStatus
from followers.models import Subscription
from portfolios.services import portfolio_order_place
from tests.acceptance.test_bad_input import client_for, ok, refused
from tests.copytrading.world import (
    ETH_PERP,
    World,
    footprint,
    mirror_orders_of,
    mirrors_of,
    outcomes,
    wallet,
)

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 2  # several chunks per event
    return World(instruments, django_capture_on_commit_callbacks)


def leader_order(event: LeaderEvent) -> Order:
    return Order.objects.get(pk=event.payload["leader_order_id"])


def order_state(order: Order) -> tuple:
    order.refresh_from_db()
    return (order.side, order.quantity, order.price, order.status, order.reserved)


def test_a_buy_limit_rests_until_the_mark_reaches_it_then_leader_and_mirrors_fill_once(world):
    portfolio = world.leader()
    subs = [world.follower(portfolio) for _ in range(3)]
    placed = world.limit(portfolio, ETH_PERP, "buy", "2", "3100")

    assert placed.kind == "limit_placed"
    order = leader_order(placed)
    assert order_state(order) == ("buy", D("2"), D("3100"), "open", D("620"))  # 2 x 3100 / 10
    assert (wallet(portfolio).balance, wallet(portfolio).locked) == (D("20000"), D("620"))
    assert outcomes(placed) == {s.pk: ("COPIED", "") for s in subs}
    for sub in subs:
        (mirror_order,) = mirror_orders_of(sub)
        assert order_state(mirror_order) == ("buy", D("1"), D("3100"), "open", D("310"))
        assert mirror_order.leader_order_id == order.pk
        assert (wallet(sub).balance, wallet(sub).locked) == (D("5000"), D("310"))
        assert not mirrors_of(sub).exists()

    before = footprint()
    assert world.price(ETH_PERP, "3100.01") == []  # one tick above the limit: nothing
    assert footprint() == before

    (filled,) = world.price(ETH_PERP, "3100")
    assert filled.kind == "position_open"
    assert filled.payload["limit_order_id"] == order.pk
    assert (filled.payload["price"], filled.payload["quantity"], filled.payload["limit_final"]) == (
        "3100.00000000",
        "2.00000000",
        True,
    )
    assert order_state(order) == ("buy", D("2"), D("3100"), "filled", D("0"))
    leader_position = Position.objects.get(pk=filled.payload["leader_position_id"])
    assert (leader_position.side, leader_position.quantity, leader_position.entry_price) == ("long", 2, 3100)
    assert order.position_id == leader_position.pk
    assert (wallet(portfolio).balance, wallet(portfolio).locked) == (D("20000"), D("620"))
    # The mirrors filled with the leader, so the fill event must not open them again.
    assert outcomes(filled) == {s.pk: ("SKIPPED", "MIRROR_LIMIT_FILLED") for s in subs}
    for sub in subs:
        (mirror,) = mirrors_of(sub)
        assert (mirror.side, mirror.quantity, mirror.entry_price, mirror.margin) == ("long", 1, 3100, 310)
        assert mirror.leader_position_id == leader_position.pk
        (mirror_order,) = mirror_orders_of(sub)
        assert order_state(mirror_order) == ("buy", D("1"), D("3100"), "filled", D("0"))
        assert mirror_order.position_id == mirror.pk
        assert (wallet(sub).balance, wallet(sub).locked) == (D("5000"), D("310"))
        assert Order.objects.filter(subscription_id=sub.pk).count() == 1

    before = footprint()
    assert world.price(ETH_PERP, "3100") == []  # the same price again: nothing more
    assert world.price(ETH_PERP, "3050") == []
    assert footprint() == before
    assert ledger_check().ok


def test_a_sell_limit_opens_shorts_when_the_mark_rises_to_it(world):
    portfolio = world.leader()
    sub = world.follower(portfolio, multiplier="0.3")
    world.limit(portfolio, ETH_PERP, "sell", "1", "3300", leverage=5)
    assert world.price(ETH_PERP, "3299.99") == []
    (filled,) = world.price(ETH_PERP, "3350")  # a gap through the limit still fills at the limit
    assert filled.payload["price"] == "3300.00000000"
    (mirror,) = mirrors_of(sub)
    assert (mirror.side, mirror.quantity, mirror.entry_price, mirror.leverage, mirror.margin) == (
        "short",
        D("0.3"),
        D("3300"),
        5,
        D("198"),
    )
    assert wallet(sub).locked == D("198")
    assert ledger_check().ok


def test_reprice_and_cancel_are_mirrored_and_release_the_reservation(world):
    portfolio = world.leader()
    subs = [world.follower(portfolio), world.follower(portfolio, multiplier="0.2")]
    placed = world.limit(portfolio, ETH_PERP, "buy", "1", "3000")
    order = leader_order(placed)

    repriced = world.reprice(portfolio, order.pk, "2950")
    assert (repriced.kind, repriced.payload["price"], repriced.payload["previous_price"]) == (
        "limit_repriced",
        "2950.00000000",
        "3000.00000000",
    )
    assert outcomes(repriced) == {s.pk: ("COPIED", "") for s in subs}
    assert order_state(order) == ("buy", D("1"), D("2950"), "open", D("295"))
    assert wallet(portfolio).locked == D("295")
    expected = {subs[0].pk: (D("0.5"), D("147.5")), subs[1].pk: (D("0.2"), D("59"))}
    for sub in subs:
        quantity, reserved = expected[sub.pk]
        (mirror_order,) = mirror_orders_of(sub)
        assert order_state(mirror_order) == ("buy", quantity, D("2950"), "open", reserved)
        assert wallet(sub).locked == reserved
        executed = Execution.objects.get(event=repriced, subscription_id=sub.pk)
        assert (executed.order_id, executed.follower_price) == (mirror_order.pk, D("2950"))

    # Crosses the old price, not the new one.
    assert world.price(ETH_PERP, "2990") == []
    assert order_state(order)[3] == "open"

    cancelled = world.cancel(portfolio, order.pk)
    assert cancelled.kind == "limit_cancelled"
    assert outcomes(cancelled) == {s.pk: ("COPIED", "") for s in subs}
    assert order_state(order) == ("buy", D("1"), D("2950"), "cancelled", D("0"))
    assert (wallet(portfolio).balance, wallet(portfolio).locked) == (D("20000"), D("0"))
    for sub in subs:
        (mirror_order,) = mirror_orders_of(sub)
        assert (mirror_order.status, mirror_order.reserved) == ("cancelled", D("0"))
        assert (wallet(sub).balance, wallet(sub).locked) == (D("5000"), D("0"))

    before = footprint()
    assert world.price(ETH_PERP, "2900") == []
    assert footprint() == before
    assert not Position.objects.exists()
    assert ledger_check().ok


def test_a_mirror_still_resting_when_the_leader_filled_fills_with_the_fill_event(world):
    portfolio = world.leader()
    subs = [world.follower(portfolio) for _ in range(3)]
    # Placed without dispatch: the market reaches the limit before any mirror exists.
    (placed,) = portfolio_order_place(
        portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("2"), leverage=10, order_type="limit",
        price=D("3100"),
    )  # fmt: skip
    (filled,) = world.price(ETH_PERP, "3100")
    filled.refresh_from_db()
    assert filled.status == LeaderEventStatus.PENDING  # waits for the placement, in sequence order
    assert not Order.objects.filter(leader_order__isnull=False).exists()

    tasks.propagate_event(placed.pk)  # placement, then (dispatched on completion) the fill
    for event in (placed, filled):
        event.refresh_from_db()
        assert event.status == LeaderEventStatus.DONE
        assert outcomes(event) == {s.pk: ("COPIED", "") for s in subs}
    leader_position_id = filled.payload["leader_position_id"]
    for sub in subs:
        (mirror_order,) = mirror_orders_of(sub)  # the resting mirror is the order that filled
        (mirror,) = mirrors_of(sub)
        assert order_state(mirror_order) == ("buy", D("1"), D("3100"), "filled", D("0"))
        assert mirror_order.position_id == mirror.pk
        assert (mirror.quantity, mirror.entry_price, mirror.leader_position_id) == (1, 3100, leader_position_id)
        assert wallet(sub).locked == D("310")
        executed = Execution.objects.get(event=filled, subscription_id=sub.pk)
        assert (executed.order_id, executed.follower_quantity, executed.follower_price) == (
            mirror_order.pk,
            D("1"),
            D("3100"),
        )
    before = footprint()
    assert world.price(ETH_PERP, "3100") == []
    assert footprint() == before
    assert ledger_check().ok


def test_a_limit_sell_on_a_long_reduces_every_mirror_by_the_leaders_fraction(world):
    portfolio = world.leader()
    half, fifth = world.follower(portfolio), world.follower(portfolio, multiplier="0.2")
    world.trade(portfolio, ETH_PERP, "buy", "10")
    placed = world.limit(portfolio, ETH_PERP, "sell", "4", "3300")
    assert [order_state(o) for o in (*mirror_orders_of(half), *mirror_orders_of(fifth))] == [
        ("sell", D("2"), D("3300"), "open", D("660")),
        ("sell", D("0.8"), D("3300"), "open", D("264")),
    ]

    (reduced,) = world.price(ETH_PERP, "3300")
    assert (reduced.kind, reduced.payload["fraction"], reduced.payload["limit_order_id"]) == (
        "position_reduce",
        "0.4",
        placed.payload["leader_order_id"],
    )
    assert outcomes(reduced) == {
        half.pk: ("SKIPPED", "MIRROR_LIMIT_FILLED"),
        fifth.pk: ("SKIPPED", "MIRROR_LIMIT_FILLED"),
    }
    for sub, size in ((half, D("5")), (fifth, D("2"))):
        (mirror,) = mirrors_of(sub)
        assert (mirror.side, mirror.quantity, mirror.status) == ("long", size * D("0.6"), PositionStatus.OPEN)
        assert mirror.realized_pnl == size * D("0.4") * 100
        assert mirror.margin == size * 320 * D("0.6")
        assert (wallet(sub).balance, wallet(sub).locked) == (D("5000") + size * 40, mirror.margin)
    assert Position.objects.get(pk=reduced.payload["leader_position_id"]).quantity == D("6")
    assert ledger_check().ok


def test_a_limit_that_flips_the_leader_flips_each_mirror_as_close_then_open(world):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    world.limit(portfolio, ETH_PERP, "sell", "5", "3300", leverage=5)
    (mirror_order,) = mirror_orders_of(sub)
    assert order_state(mirror_order) == ("sell", D("2.5"), D("3300"), "open", D("1650"))

    close, reopen = world.price(ETH_PERP, "3300")
    assert (close.kind, close.payload["limit_final"], reopen.kind, reopen.payload["limit_final"]) == (
        "position_close",
        False,
        "position_open",
        True,
    )
    assert reopen.payload["quantity"] == "3.00000000"
    for event in (close, reopen):
        assert outcomes(event) == {sub.pk: ("SKIPPED", "MIRROR_LIMIT_FILLED")}
    long_mirror, short_mirror = mirrors_of(sub)
    assert (long_mirror.leader_position_id, long_mirror.status, long_mirror.realized_pnl) == (
        opened.payload["leader_position_id"],
        "closed",
        D("100"),
    )
    # 2.5 x (3 opened / 5 ordered): the mirror opens what the leader opened, scaled.
    assert (short_mirror.side, short_mirror.quantity, short_mirror.entry_price, short_mirror.leverage) == (
        "short",
        D("1.5"),
        D("3300"),
        5,
    )
    assert short_mirror.leader_position_id == reopen.payload["leader_position_id"]
    assert order_state(mirror_order)[3] == "filled"
    assert mirror_order.position_id == short_mirror.pk
    assert (wallet(sub).balance, wallet(sub).locked) == (D("5100"), D("990"))
    assert ledger_check().ok


def test_followers_who_cannot_copy_the_limit_keep_their_reason_and_never_get_it_twice(world, settings):
    settings.FANOUT_CHUNK_SIZE = 10
    portfolio = world.leader()
    copier = world.follower(portfolio)
    poor = world.follower(portfolio, amount="150")  # the mirror reserves 0.5 x 3100 / 10 = 155
    paused = world.follower(portfolio)
    Subscription.objects.filter(pk=paused.pk).update(status="paused")

    placed = world.limit(portfolio, ETH_PERP, "buy", "1", "3100")
    assert outcomes(placed) == {
        copier.pk: ("COPIED", ""),
        poor.pk: ("REJECTED", "INSUFFICIENT_MARGIN"),
        paused.pk: ("SKIPPED", "SUBSCRIPTION_PAUSED"),
    }
    assert not mirror_orders_of(poor).exists() and not mirror_orders_of(paused).exists()

    (filled,) = world.price(ETH_PERP, "3100")
    # Without a mirror limit the fill copies like a market order would.
    assert outcomes(filled) == {
        copier.pk: ("SKIPPED", "MIRROR_LIMIT_FILLED"),
        poor.pk: ("REJECTED", "INSUFFICIENT_MARGIN"),
        paused.pk: ("SKIPPED", "SUBSCRIPTION_PAUSED"),
    }
    assert [(m.quantity, m.entry_price) for m in mirrors_of(copier)] == [(D("0.5"), D("3100"))]
    assert not mirrors_of(poor).exists() and not mirrors_of(paused).exists()
    assert wallet(poor).locked == 0
    assert ledger_check().ok


def test_a_follower_who_joined_after_the_placement_gets_the_fill_as_a_market_copy(world):
    portfolio = world.leader()
    early = world.follower(portfolio)
    world.limit(portfolio, ETH_PERP, "buy", "1", "3100")
    late = world.follower(portfolio, multiplier="0.2")
    (filled,) = world.price(ETH_PERP, "3100")
    assert outcomes(filled) == {early.pk: ("SKIPPED", "MIRROR_LIMIT_FILLED"), late.pk: ("COPIED", "")}
    assert [(m.quantity, m.entry_price) for m in mirrors_of(early)] == [(D("0.5"), D("3100"))]
    assert [(m.quantity, m.entry_price) for m in mirrors_of(late)] == [(D("0.2"), D("3100"))]
    assert list(Order.objects.filter(subscription_id=late.pk).values_list("order_type", flat=True)) == ["market"]


def test_a_leader_limit_that_cannot_be_afforded_at_fill_is_rejected_and_its_mirrors_cancelled(world):
    portfolio = world.leader(fund="5000")
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1", leverage=1)  # margin 3200 of 5000
    placed = world.limit(portfolio, ETH_PERP, "buy", "1", "3100", leverage=100)  # reserves 31
    order = leader_order(placed)
    assert wallet(portfolio).locked == D("3231")
    assert order_state(mirror_orders_of(sub).get()) == ("buy", D("0.5"), D("3100"), "open", D("15.5"))

    # Filled into the existing 1x position the increase needs 3100 of margin; 1800 is free.
    (cancelled,) = world.price(ETH_PERP, "3100")
    assert (cancelled.kind, cancelled.payload["reason"]) == ("limit_cancelled", "INSUFFICIENT_MARGIN")
    assert order_state(order) == ("buy", D("1"), D("3100"), "rejected", D("0"))
    assert wallet(portfolio).locked == D("3200")
    assert outcomes(cancelled) == {sub.pk: ("COPIED", "")}
    assert order_state(mirror_orders_of(sub).get()) == ("buy", D("0.5"), D("3100"), "cancelled", D("0"))
    assert wallet(sub).locked == D("1600")  # the mirror's 1x margin only
    assert [m.quantity for m in mirrors_of(sub)] == [D("0.5")]
    assert ledger_check().ok


# --- the leader API -----------------------------------------------------------------


class Book:
    """A leader (mode all) through the API with one resting limit buy at 3100,
    one filled market order, and a follower copying both."""

    def __init__(self, world):
        self.world = world
        self.portfolio = world.leader(mode="all")
        self.follower = world.follower(self.portfolio)
        self.api = client_for(self.portfolio.leader)
        self.base = f"/api/v1/portfolios/{self.portfolio.pk}"
        (opened,) = world.trade(self.portfolio, ETH_PERP, "buy", "1")
        self.filled = opened.payload["order_id"]
        body = ok(
            self.send(
                "post",
                "/orders",
                {"symbol": ETH_PERP, "side": "buy", "quantity": "1", "type": "limit", "price": "3100", "leverage": 10},
            )
        )
        self.resting = body["events"][0]["payload"]["leader_order_id"]
        self.mirror = mirror_orders_of(self.follower).get().pk

    def send(self, method: str, path: str, body=None):
        with self.world.capture(execute=True):
            return getattr(self.api, method)(self.base + path, body, format="json")


@pytest.fixture
def book(world):
    return Book(world)


def test_orders_through_the_api_reprice_cancel_and_list(book):
    body = ok(book.send("patch", f"/orders/{book.resting}", {"price": "3050.5"}), 200)
    assert [e["kind"] for e in body["events"]] == ["limit_repriced"]
    assert mirror_orders_of(book.follower).get().price == D("3050.5")
    listed = {o["id"]: o for o in book.api.get(book.base + "/orders").json()["results"]}
    assert (listed[book.resting]["status"], listed[book.resting]["price"], listed[book.resting]["reserved"]) == (
        "open",
        "3050.50000000",
        "305.05000000",
    )
    body = ok(book.send("post", f"/orders/{book.resting}/cancel"), 200)
    assert [e["kind"] for e in body["events"]] == ["limit_cancelled"]
    assert mirror_orders_of(book.follower).get().status == "cancelled"

    second = ok(
        book.send(
            "post", "/orders", {"symbol": ETH_PERP, "side": "sell", "quantity": "0.5", "type": "limit", "price": "3300"}
        )
    )
    order_id = second["events"][0]["payload"]["leader_order_id"]
    body = ok(book.send("delete", f"/orders/{order_id}"), 200)
    assert [e["kind"] for e in body["events"]] == ["limit_cancelled"]
    assert Order.objects.get(pk=order_id).status == "cancelled"
    assert wallet(book.portfolio).locked == D("320")  # the open position's margin only


LIMIT = {"symbol": ETH_PERP, "side": "buy", "quantity": "1", "type": "limit", "price": "3000", "leverage": 10}


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"price": None}, "INVALID_PRICE", "price"),
        ({"price": "0"}, "INVALID_PRICE", "price"),
        ({"price": "3000.005"}, "PRICE_NOT_ON_TICK", "price"),
        ({"price": "abc"}, "INVALID", "price"),
        ({"price": "3200"}, "LIMIT_PRICE_MARKETABLE", "price"),
        ({"side": "sell", "price": "3100"}, "LIMIT_PRICE_MARKETABLE", "price"),
        ({"quantity": "0.001"}, "INVALID_QUANTITY", "quantity"),
        ({"quantity": "500"}, "INSUFFICIENT_FUNDS", "quantity"),
        ({"leverage": 101}, "INVALID_LEVERAGE", "leverage"),
        ({"side": "hold"}, "INVALID_CHOICE", "side"),
        ({"symbol": "ETH/USDT", "side": "sell", "price": "3300"}, "INSUFFICIENT_HOLDING", "quantity"),
        ({"symbol": "ETH/USDT", "quantity": "500"}, "INSUFFICIENT_FUNDS", "quantity"),
        ({"symbol": "DOGE/USDT:USDT"}, "UNKNOWN_INSTRUMENT", "symbol"),
        ({"type": "market_if_touched"}, "INVALID_ORDER_TYPE", "type"),
        ({"type": "twap"}, "ADVANCED_ORDER_NOT_SUPPORTED", "type"),
        ({"type": "stop"}, "STOP_ORDER_NOT_SUPPORTED_FOR_COPY", "type"),
        ({"type": "stop_limit"}, "STOP_ORDER_NOT_SUPPORTED_FOR_COPY", "type"),
    ],
)
def test_placing_a_bad_limit_order_is_refused_and_writes_nothing(book, changes, code, field):
    before = footprint()
    refused(book.send("post", "/orders", {**LIMIT, **changes}), 400, code, field)
    assert footprint() == before


@pytest.mark.parametrize(
    ("target", "body", "status", "code", "field"),
    [
        ("resting", {}, 400, "INVALID_REQUIRED", "price"),
        ("resting", {"price": "abc"}, 400, "INVALID", "price"),
        ("resting", {"price": "3000.001"}, 400, "PRICE_NOT_ON_TICK", "price"),
        ("resting", {"price": "-5"}, 400, "INVALID_PRICE", "price"),
        ("resting", {"price": "3200"}, 400, "LIMIT_PRICE_MARKETABLE", "price"),
        ("resting", {"price": "3100"}, 400, "PRICE_UNCHANGED", "price"),
        ("resting", {"price": "1000000"}, 400, "LIMIT_PRICE_MARKETABLE", "price"),
        ("filled", {"price": "3000"}, 409, "ORDER_NOT_OPEN", None),
        ("mirror", {"price": "3000"}, 404, "NOT_FOUND", None),
        ("missing", {"price": "3000"}, 404, "NOT_FOUND", None),
    ],
)
def test_repricing_bad_input_is_refused_and_writes_nothing(book, target, body, status, code, field):
    order_id = {"resting": book.resting, "filled": book.filled, "mirror": book.mirror, "missing": 999999}[target]
    before = footprint()
    refused(book.send("patch", f"/orders/{order_id}", body), status, code, field)
    assert footprint() == before


@pytest.mark.parametrize("how", ["delete", "post"])
@pytest.mark.parametrize(
    ("target", "status", "code"),
    [("filled", 409, "ORDER_NOT_OPEN"), ("mirror", 404, "NOT_FOUND"), ("missing", 404, "NOT_FOUND")],
)
def test_cancelling_what_cannot_be_cancelled_is_refused(book, how, target, status, code):
    order_id = {"filled": book.filled, "mirror": book.mirror, "missing": 999999}[target]
    path = f"/orders/{order_id}" if how == "delete" else f"/orders/{order_id}/cancel"
    before = footprint()
    refused(book.send(how, path), status, code, None)
    assert footprint() == before


def test_an_order_cannot_be_cancelled_twice_or_changed_by_another_leader(book, world):
    ok(book.send("delete", f"/orders/{book.resting}"), 200)
    other = world.leader()
    stranger = client_for(other.leader)
    before = footprint()
    refused(book.send("post", f"/orders/{book.resting}/cancel"), 409, "ORDER_NOT_OPEN", None)
    refused(book.send("patch", f"/orders/{book.resting}", {"price": "3000"}), 409, "ORDER_NOT_OPEN", None)
    # Another leader's own portfolio does not hold the order; theirs is not found.
    refused(stranger.delete(f"/api/v1/portfolios/{other.pk}/orders/{book.resting}"), 404, "NOT_FOUND", None)
    refused(stranger.delete(f"{book.base}/orders/{book.resting}"), 404, "NOT_FOUND", None)
    assert footprint() == before
