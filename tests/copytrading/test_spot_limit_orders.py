"""Spot limit orders: what a resting buy or sell holds (the quote, or the
holding), that nothing can spend it twice, and that mirrors follow the
leader's order through placing, re-pricing, cancelling and filling, once.
The SPEC §4 rows are in tests/acceptance/test_spot_propagation_table.py."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backoffice.loadgen import followers_seed_bulk
from copytrading import propagation
from copytrading.errors import DomainError
from copytrading.ledger import ledger_check
from copytrading.models import Execution, Holding, Instrument, LeaderEvent, Order, PropagationChunk
from copytrading.services import price_set
from followers.services import subscription_unfollow
from portfolios import services as portfolio_services
from tests.acceptance.test_bad_input import client_for, ok, refused
from tests.copytrading.test_chunk_queries_scale import propagate_by_hand, statements
from tests.copytrading.world import World, footprint, mirror_orders_of, outcomes, wallet

D = Decimal
ETH, BTC, ETH_BTC = "ETH/USDT", "BTC/USDT", "ETH/BTC"


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 2  # several chunks per event
    return World(instruments, django_capture_on_commit_callbacks)


def held(account_id: int, asset: str = "ETH") -> tuple[Decimal, Decimal]:
    h = Holding.objects.filter(account_id=account_id, asset=asset).first()
    return (h.quantity, h.reserved) if h else (D("0"), D("0"))


def leader_holding(portfolio, asset: str = "ETH") -> tuple[Decimal, Decimal]:
    return held(portfolio.trading_account_id, asset)


def follower_holding(sub, asset: str = "ETH") -> tuple[Decimal, Decimal]:
    return held(sub.copy_account_id, asset)


class SpotBook:
    """A spot leader through the API holding 2 ETH (bought at 3200), copied by
    one follower (progressive 0.5, so 1 ETH)."""

    def __init__(self, world):
        self.world = world
        self.portfolio = world.leader(mode="spot")
        self.follower = world.follower(self.portfolio)
        self.api = client_for(self.portfolio.leader)
        self.base = f"/api/v1/portfolios/{self.portfolio.pk}"
        world.trade(self.portfolio, ETH, "buy", "2", leverage=1)

    def send(self, method: str, path: str, body=None):
        with self.world.capture(execute=True):
            return getattr(self.api, method)(self.base + path, body, format="json")

    def limit(self, side: str, quantity: str, price: str, symbol: str = ETH) -> int:
        body = {"symbol": symbol, "side": side, "quantity": quantity, "type": "limit", "price": price}
        return ok(self.send("post", "/orders", body))["events"][0]["payload"]["leader_order_id"]


@pytest.fixture
def book(world):
    return SpotBook(world)


def test_a_resting_buy_holds_its_cost_and_a_resting_sell_its_quantity(book):
    leader = wallet(book.portfolio)
    assert (leader.balance, leader.locked) == (D("13600"), D("0"))  # 20000 - 2 x 3200

    buy = book.limit("buy", "1", "3100")
    sell = book.limit("sell", "0.5", "3300")
    assert wallet(book.portfolio).locked == D("3100")
    assert leader_holding(book.portfolio) == (D("2"), D("0.5"))
    listed = {o["id"]: (o["status"], o["reserved"]) for o in book.api.get(book.base + "/orders").json()["results"]}
    assert listed[buy] == ("open", "3100.00000000")
    assert listed[sell] == ("open", "0.50000000")  # in ETH: what a sell pays with
    # The mirrors hold the same, in the follower's own wallet and holding.
    assert wallet(book.follower).locked == D("1550")  # 0.5 x 3100
    assert follower_holding(book.follower) == (D("1"), D("0.25"))  # 0.25 of its 1 ETH

    # Only the free part can be sold at market or in another limit.
    before = footprint()
    body = {"symbol": ETH, "side": "sell", "quantity": "1.6", "type": "market"}
    refused(book.send("post", "/orders", body), 400, "INSUFFICIENT_HOLDING", "quantity")
    body = {"symbol": ETH, "side": "sell", "quantity": "1.6", "type": "limit", "price": "3400"}
    refused(book.send("post", "/orders", body), 400, "INSUFFICIENT_HOLDING", "quantity")
    assert footprint() == before
    ok(book.send("post", "/orders", {"symbol": ETH, "side": "sell", "quantity": "1.5", "type": "market"}))
    assert leader_holding(book.portfolio) == (D("0.5"), D("0.5"))
    assert follower_holding(book.follower) == (D("0.25"), D("0.25"))  # 0.75 of 1, all it had free

    # Re-pricing a buy re-reserves its cost; a sell keeps its quantity.
    ok(book.send("patch", f"/orders/{buy}", {"price": "3000"}), 200)
    ok(book.send("patch", f"/orders/{sell}", {"price": "3400"}), 200)
    assert wallet(book.portfolio).locked == D("3000")
    assert leader_holding(book.portfolio) == (D("0.5"), D("0.5"))
    assert wallet(book.follower).locked == D("1500")
    assert follower_holding(book.follower) == (D("0.25"), D("0.25"))

    # Cancelling gives everything back, to the leader and the follower.
    ok(book.send("delete", f"/orders/{buy}"), 200)
    ok(book.send("delete", f"/orders/{sell}"), 200)
    assert wallet(book.portfolio).locked == D("0")
    assert leader_holding(book.portfolio) == (D("0.5"), D("0"))
    assert wallet(book.follower).locked == D("0")
    assert follower_holding(book.follower) == (D("0.25"), D("0"))
    assert [o.status for o in mirror_orders_of(book.follower)] == ["cancelled", "cancelled"]
    assert ledger_check().ok


def test_a_buy_reprice_beyond_the_free_cash_is_refused_and_changes_nothing(book):
    order_id = book.limit("buy", "4.4", "3000")  # 13200 of the 13600 free
    before = footprint()
    refused(book.send("patch", f"/orders/{order_id}", {"price": "3100"}), 400, "INSUFFICIENT_FUNDS", "price")
    assert footprint() == before
    assert wallet(book.portfolio).locked == D("13200")


def test_a_mirror_whose_reprice_it_cannot_afford_is_cancelled_and_released(world):
    portfolio = world.leader(mode="spot")
    poor = world.follower(portfolio, amount="1590", multiplier="1")
    event = world.limit(portfolio, ETH, "buy", "0.5", "3100", leverage=1)
    assert outcomes(event) == {poor.pk: ("COPIED", "")}
    assert wallet(poor).locked == D("1550")
    repriced = world.reprice(portfolio, event.payload["leader_order_id"], "3150")  # 1575 of 1590
    assert outcomes(repriced) == {poor.pk: ("COPIED", "")}
    assert wallet(poor).locked == D("1575")
    higher = world.reprice(portfolio, event.payload["leader_order_id"], "3190")  # 1595: 5 more than it has
    assert outcomes(higher) == {poor.pk: ("REJECTED", "INSUFFICIENT_FUNDS")}
    (mirror,) = mirror_orders_of(poor)
    assert (mirror.status, mirror.reserved) == ("cancelled", D("0"))
    assert wallet(poor).locked == D("0")
    # Cancelled, it no longer follows: the leader's cancel finds nothing to cancel.
    cancelled = world.cancel(portfolio, event.payload["leader_order_id"])
    assert outcomes(cancelled) == {poor.pk: ("SKIPPED", "NO_MIRROR_ORDER")}
    assert ledger_check().ok


def test_a_cross_pair_limit_buy_holds_the_quote_asset(world):
    portfolio = world.leader(mode="spot")
    world.trade(portfolio, BTC, "buy", "0.1", leverage=1)
    event = world.limit(portfolio, ETH_BTC, "buy", "1", "0.049", leverage=1)
    assert leader_holding(portfolio, "BTC") == (D("0.1"), D("0.049"))
    assert wallet(portfolio).locked == D("0")  # paid in BTC, not in the primary currency
    with pytest.raises(DomainError) as refused_buy:  # 1.1 x 0.05 = 0.055 of the 0.051 BTC free
        world.trade(portfolio, ETH_BTC, "buy", "1.1", leverage=1)
    assert refused_buy.value.code == "INSUFFICIENT_HOLDING"
    world.cancel(portfolio, event.payload["leader_order_id"])
    assert leader_holding(portfolio, "BTC") == (D("0.1"), D("0"))
    assert ledger_check().ok


def test_two_sells_of_one_leader_fill_at_one_price_update_in_turn(world):
    portfolio = world.leader(mode="spot")
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH, "buy", "2", leverage=1)
    first = world.limit(portfolio, ETH, "sell", "0.5", "3300", leverage=1)  # 0.25 of 2
    second = world.limit(portfolio, ETH, "sell", "0.5", "3250", leverage=1)  # 0.25 of 2 as well
    assert follower_holding(sub) == (D("1"), D("0.5"))

    fills = world.price(ETH, "3300")  # crosses both
    assert [(e.kind, e.payload["limit_order_id"], e.payload["price"]) for e in fills] == [
        ("spot_sell", first.payload["leader_order_id"], "3300.00000000"),
        ("spot_sell", second.payload["leader_order_id"], "3250.00000000"),
    ]
    # Each netted against what the previous one left: 0.5 of 2, then 0.5 of 1.5.
    assert [D(e.payload["fraction"]) for e in fills] == [D("0.25"), D("0.5") / D("1.5")]
    assert leader_holding(portfolio) == (D("1"), D("0"))
    assert wallet(portfolio).balance == D("13600") + D("1650") + D("1625")
    for fill in fills:
        assert outcomes(fill) == {sub.pk: ("SKIPPED", "MIRROR_LIMIT_FILLED")}
    assert follower_holding(sub) == (D("0.5"), D("0"))
    assert wallet(sub).balance == D("1800") + D("825") + D("812.5")
    assert [o.status for o in mirror_orders_of(sub)] == ["filled", "filled"]
    assert ledger_check().ok


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_a_mirror_placed_after_its_leader_filled_fills_from_the_fill_event_once(
    world, side, django_capture_on_commit_callbacks
):
    """The leader's limit fills before its placement reached the followers
    (the event was still queued): the mirror is placed, then filled by the
    fill event at its own price; a replay of the fill changes nothing."""
    portfolio = world.leader(mode="spot")
    sub = world.follower(portfolio)
    if side == "sell":
        world.trade(portfolio, ETH, "buy", "2", leverage=1)
    price = "3100" if side == "buy" else "3300"
    with django_capture_on_commit_callbacks() as pending:  # queued, not yet propagated
        (placed,) = portfolio_services.portfolio_order_place(
            portfolio=portfolio, symbol=ETH, side=side, quantity=D("0.5"), order_type="limit", price=D(price)
        )
        price_set(instrument=Instrument.objects.get(symbol=ETH), price=D(price))
    (fill,) = LeaderEvent.objects.filter(pk__gt=placed.pk)
    assert fill.kind == f"spot_{side}"
    assert not mirror_orders_of(sub).exists()

    with django_capture_on_commit_callbacks(execute=True):
        for callback in pending:
            callback()
    assert outcomes(placed) == {sub.pk: ("COPIED", "")}
    assert outcomes(fill) == {sub.pk: ("COPIED", "")}
    (mirror,) = mirror_orders_of(sub)
    execution = Execution.objects.get(event=fill, subscription_id=sub.pk)
    assert (execution.order_id, execution.follower_quantity, execution.follower_price) == (
        mirror.pk,
        D("0.25"),
        D(price),
    )
    assert (mirror.status, mirror.reserved, mirror.quantity) == ("filled", D("0"), D("0.25"))
    assert wallet(sub).locked == D("0")
    if side == "buy":
        assert follower_holding(sub) == (D("0.25"), D("0"))
        assert wallet(sub).balance == D("5000") - D("775")
    else:
        assert follower_holding(sub) == (D("0.75"), D("0"))
        assert wallet(sub).balance == D("1800") + D("825")

    before = footprint()
    PropagationChunk.objects.filter(event=fill).update(status="pending")
    for chunk_id in PropagationChunk.objects.filter(event=fill).values_list("pk", flat=True):
        propagation.chunk_propagate(chunk_id)
    assert footprint() == before
    assert ledger_check().ok


def test_unfollow_cancels_a_resting_mirror_sell_and_sells_the_whole_holding(world):
    portfolio = world.leader(mode="spot")
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH, "buy", "2", leverage=1)
    world.limit(portfolio, ETH, "sell", "1", "3300", leverage=1)
    world.limit(portfolio, ETH, "buy", "1", "3000", leverage=1)
    assert follower_holding(sub) == (D("1"), D("0.5"))
    assert wallet(sub).locked == D("1500")

    with world.capture(execute=True):
        subscription_unfollow(subscription=sub)
    assert follower_holding(sub) == (D("0"), D("0"))
    assert [o.status for o in mirror_orders_of(sub)] == ["cancelled", "cancelled"]
    account = wallet(sub)
    assert (account.balance, account.locked, account.is_closed) == (D("0"), D("0"), True)
    assert ledger_check().ok


def _spot_chunk_queries(settings, monkeypatch, followers: int, stage: str) -> tuple[int, int, int]:
    """One chunk's queries for a spot limit sell being placed (holdings
    reserved) or filled from the fill event (resting mirrors fill)."""
    settings.FANOUT_CHUNK_SIZE = followers
    settings.PAPER_SPREAD_BPS = D("0")
    world = World(None, None)
    portfolio = world.leader(mode="spot")
    subs = followers_seed_bulk(portfolio=portfolio, count=followers)
    eth = Instrument.objects.get(symbol=ETH)
    price_set(instrument=eth, price=D("3200"))
    (bought,) = portfolio_services.portfolio_order_place(portfolio=portfolio, symbol=ETH, side="buy", quantity=D("2"))
    propagate_by_hand(bought.pk)
    (event,) = portfolio_services.portfolio_order_place(
        portfolio=portfolio, symbol=ETH, side="sell", quantity=D("1"), order_type="limit", price=D("3300")
    )
    if stage == "fill":
        price_set(instrument=eth, price=D("3300"))  # the leader fills before its mirrors exist
        with monkeypatch.context() as patched:  # the fill event is driven by hand below
            patched.setattr(propagation, "dispatch", lambda event_id: None)
            propagate_by_hand(event.pk)
        event = LeaderEvent.objects.get(portfolio_id=portfolio.pk, kind="spot_sell")
    (chunk_id,) = propagation.event_start(event.pk)
    with CaptureQueriesContext(connection) as queries:
        result = propagation.chunk_propagate(chunk_id)
    propagation.event_complete(event.pk)
    assert result.copied == followers
    mirrors = Order.objects.filter(subscription_id__in=subs, order_type="limit")
    expected = "filled" if stage == "fill" else "open"
    assert list(set(mirrors.values_list("status", flat=True))) == [expected]
    assert mirrors.count() == followers
    assert ledger_check().ok
    return statements(queries.captured_queries)


@pytest.mark.parametrize("stage", ["placed", "fill"])
def test_a_spot_limit_chunk_costs_the_same_queries_at_chunk_size_100_and_500(
    settings, monkeypatch, instruments, vendor, stage
):
    (small_queries, small, _), (large_queries, large, _) = (
        _spot_chunk_queries(settings, monkeypatch, 100, stage),
        _spot_chunk_queries(settings, monkeypatch, 500, stage),
    )
    assert small == large, (small, large)
    assert small < 40
    if vendor != "sqlite":
        assert small_queries == large_queries, (small_queries, large_queries)
