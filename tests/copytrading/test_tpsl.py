"""TP/SL: set on the leader's position, copied to every open mirror, triggered
by price updates for the leader and for each mirror exactly once; and the
leader API refusing what it must (multi-level, wrong side, bad batch)."""

from decimal import Decimal

import pytest

from copytrading import trade_math
from copytrading.ledger import ledger_check
from copytrading.models import Execution, LeaderEvent, Order, Position, PositionStatus
from tests.acceptance.test_bad_input import client_for, ok, refused
from tests.copytrading.world import BTC_PERP, ETH_PERP, World, footprint, mirrors_of, outcomes, wallet

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 2
    return World(instruments, django_capture_on_commit_callbacks)


def tpsl_of(position: Position) -> tuple:
    position.refresh_from_db()
    return (position.take_profit, position.stop_loss)


def test_tpsl_set_edited_and_cleared_on_the_leader_is_the_same_on_every_open_mirror(world):
    portfolio = world.leader()
    a, b = world.follower(portfolio), world.follower(portfolio, multiplier="0.2")
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    late = world.follower(portfolio)  # subscribed after the open: nothing to set
    leader_position = Position.objects.get(pk=opened.payload["leader_position_id"])

    event = world.tpsl(portfolio, leader_position.pk, take_profit="3400", stop_loss="3000")
    assert (event.kind, event.payload["take_profit"], event.payload["stop_loss"]) == (
        "tpsl_set",
        "3400.00000000",
        "3000.00000000",
    )
    assert outcomes(event) == {a.pk: ("COPIED", ""), b.pk: ("COPIED", ""), late.pk: ("SKIPPED", "NO_MIRROR_POSITION")}
    assert tpsl_of(leader_position) == (D("3400"), D("3000"))
    for sub in (a, b):
        assert [tpsl_of(m) for m in mirrors_of(sub)] == [(D("3400"), D("3000"))]

    edited = world.tpsl(portfolio, leader_position.pk, take_profit="3500")  # the SL stays
    assert (edited.payload["take_profit"], edited.payload["stop_loss"]) == ("3500.00000000", "3000.00000000")
    cleared = world.tpsl(portfolio, leader_position.pk, stop_loss=None)
    assert (cleared.payload["take_profit"], cleared.payload["stop_loss"]) == ("3500.00000000", None)
    for sub in (a, b):
        assert [tpsl_of(m) for m in mirrors_of(sub)] == [(D("3500"), None)]
    assert tpsl_of(leader_position) == (D("3500"), None)
    # Setting TP/SL moves no money and places no order.
    assert Order.objects.filter(subscription_id__in=[a.pk, b.pk]).count() == 2
    assert wallet(a).balance == D("5000")


def test_take_profit_closes_the_leader_and_every_mirror_exactly_once(world):
    portfolio = world.leader()
    subs = [world.follower(portfolio) for _ in range(3)]
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    leader_position_id = opened.payload["leader_position_id"]
    world.tpsl(portfolio, leader_position_id, take_profit="3400", stop_loss="3000")

    assert world.price(ETH_PERP, "3399.99") == []
    (closed,) = world.price(ETH_PERP, "3400")
    assert (closed.kind, closed.payload["trigger"], closed.payload["price"]) == (
        "position_close",
        "take_profit",
        "3400.00000000",
    )
    leader_position = Position.objects.get(pk=leader_position_id)
    assert (leader_position.status, leader_position.realized_pnl) == (PositionStatus.CLOSED, D("400"))
    assert Order.objects.get(pk=closed.payload["order_id"]).order_type == "take_profit"
    assert (wallet(portfolio).balance, wallet(portfolio).locked) == (D("20400"), D("0"))
    # Each mirror's own TP fired in the same price update: the leader's close finds nothing left.
    assert outcomes(closed) == {s.pk: ("SKIPPED", "NO_MIRROR_POSITION") for s in subs}
    for sub in subs:
        (mirror,) = mirrors_of(sub)
        assert (mirror.status, mirror.quantity, mirror.realized_pnl) == (PositionStatus.CLOSED, 0, D("200"))
        trigger_order = Order.objects.get(position=mirror, order_type="take_profit")
        assert (trigger_order.side, trigger_order.quantity, trigger_order.price) == ("sell", D("1"), D("3400"))
        assert trigger_order.subscription_id == sub.pk
        assert (wallet(sub).balance, wallet(sub).locked) == (D("5200"), D("0"))

    before = footprint()
    assert world.price(ETH_PERP, "3400") == []
    assert world.price(ETH_PERP, "3500") == []
    assert footprint() == before
    assert ledger_check().ok


def test_a_stop_loss_gapped_through_closes_a_short_at_the_mark(world):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    (opened,) = world.trade(portfolio, ETH_PERP, "sell", "2")
    world.tpsl(portfolio, opened.payload["leader_position_id"], take_profit="3000", stop_loss="3300")

    (closed,) = world.price(ETH_PERP, "3350")
    assert (closed.payload["trigger"], closed.payload["price"]) == ("stop_loss", "3350.00000000")
    assert outcomes(closed) == {sub.pk: ("SKIPPED", "NO_MIRROR_POSITION")}
    (mirror,) = mirrors_of(sub)
    assert (mirror.status, mirror.realized_pnl) == (PositionStatus.CLOSED, D("-150"))
    assert Order.objects.get(position=mirror, order_type="stop_loss").price == D("3350")
    assert (wallet(sub).balance, wallet(sub).locked) == (D("4850"), D("0"))
    assert wallet(portfolio).balance == D("19700")
    before = footprint()
    assert world.price(ETH_PERP, "3350") == []
    assert footprint() == before
    assert ledger_check().ok


def test_a_mirror_without_its_own_tp_is_closed_by_the_leaders_trigger(world):
    portfolio = world.leader()
    early = world.follower(portfolio)
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    leader_position_id = opened.payload["leader_position_id"]
    world.tpsl(portfolio, leader_position_id, take_profit="3400")
    late = world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")  # late's mirror opens now, without a TP
    assert [tpsl_of(m) for m in mirrors_of(early)] == [(D("3400"), None)]
    assert [tpsl_of(m) for m in mirrors_of(late)] == [(None, None)]

    (closed,) = world.price(ETH_PERP, "3400")
    assert outcomes(closed) == {early.pk: ("SKIPPED", "NO_MIRROR_POSITION"), late.pk: ("COPIED", "")}
    for sub, size in ((early, D("1")), (late, D("0.5"))):
        (mirror,) = mirrors_of(sub)
        assert (mirror.status, mirror.realized_pnl) == (PositionStatus.CLOSED, size * 200)
        assert wallet(sub).balance == D("5000") + size * 200
    assert list(Order.objects.filter(subscription_id=late.pk).values_list("order_type", flat=True)) == [
        "market",
        "market",
    ]
    assert ledger_check().ok


def test_a_cleared_take_profit_no_longer_triggers(world):
    portfolio = world.leader()
    world.follower(portfolio)
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    world.tpsl(portfolio, opened.payload["leader_position_id"], take_profit="3400")
    world.tpsl(portfolio, opened.payload["leader_position_id"], take_profit=None)
    before = footprint()
    assert world.price(ETH_PERP, "3500") == []
    assert footprint()[:4] == before[:4]  # no order, transfer, execution or event
    assert Position.objects.filter(status=PositionStatus.OPEN).count() == 2


@pytest.mark.parametrize(
    ("side", "entry", "take_profit", "stop_loss", "wrong"),
    [
        ("long", "100", "101", "99", None),
        ("long", "100", None, None, None),
        ("long", "100", "100", None, "take_profit"),
        ("long", "100", "99", None, "take_profit"),
        ("long", "100", None, "100", "stop_loss"),
        ("long", "100", "120", "101", "stop_loss"),
        ("short", "100", "99", "101", None),
        ("short", "100", "101", None, "take_profit"),
        ("short", "100", None, "99", "stop_loss"),
        ("short", "100", None, "100", "stop_loss"),
    ],
)
def test_tpsl_error_names_the_price_on_the_wrong_side(side, entry, take_profit, stop_loss, wrong):
    tp = D(take_profit) if take_profit else None
    sl = D(stop_loss) if stop_loss else None
    assert trade_math.tpsl_error(side, D(entry), tp, sl) == wrong


# --- the leader API -----------------------------------------------------------------


class Desk:
    """A leader (through the API) with open ETH and BTC positions, each mirrored."""

    def __init__(self, world):
        self.world = world
        self.portfolio = world.leader()
        self.follower = world.follower(self.portfolio)
        self.api = client_for(self.portfolio.leader)
        (eth,) = world.trade(self.portfolio, ETH_PERP, "buy", "2")
        (btc,) = world.trade(self.portfolio, BTC_PERP, "sell", "0.1")
        self.eth = eth.payload["leader_position_id"]
        self.btc = btc.payload["leader_position_id"]
        self.base = f"/api/v1/portfolios/{self.portfolio.pk}"

    def post(self, path: str, body):
        with self.world.capture(execute=True):
            return self.api.post(self.base + path, body, format="json")

    def patch(self, path: str, body):
        with self.world.capture(execute=True):
            return self.api.patch(self.base + path, body, format="json")


@pytest.fixture
def desk(world):
    return Desk(world)


def test_single_and_batch_tpsl_through_the_api(desk):
    body = ok(desk.post(f"/positions/{desk.eth}/tpsl", {"take_profit": "3400", "stop_loss": "3000.5"}), 200)
    (event,) = body["events"]
    assert event["kind"] == "tpsl_set"
    assert outcomes(LeaderEvent.objects.get(pk=event["id"])) == {desk.follower.pk: ("COPIED", "")}

    body = ok(
        desk.post(
            "/positions/tpsl",
            {
                "items": [
                    {"position": desk.eth, "take_profit": "3500"},
                    {"position": desk.btc, "take_profit": "60000", "stop_loss": "66000"},
                ]
            },
        ),
        200,
    )
    assert [e["kind"] for e in body["events"]] == ["tpsl_set", "tpsl_set"]
    eth_mirror, btc_mirror = mirrors_of(desk.follower)
    assert tpsl_of(eth_mirror) == (D("3500"), D("3000.5"))  # the omitted SL stays
    assert tpsl_of(btc_mirror) == (D("60000"), D("66000"))
    positions = desk.api.get(desk.base + "/positions?status=open").json()["results"]
    assert {(p["id"], p["take_profit"], p["stop_loss"]) for p in positions} == {
        (desk.eth, "3500.00000000", "3000.50000000"),
        (desk.btc, "60000.00000000", "66000.00000000"),
    }


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "field"),
    [
        ("eth", {"take_profit": "3100"}, 400, "TPSL_WRONG_SIDE", "take_profit"),
        ("eth", {"stop_loss": "3300"}, 400, "TPSL_WRONG_SIDE", "stop_loss"),
        ("btc", {"take_profit": "65000"}, 400, "TPSL_WRONG_SIDE", "take_profit"),
        ("eth", {"take_profit": "3400.005"}, 400, "PRICE_NOT_ON_TICK", "take_profit"),
        ("eth", {"stop_loss": "-1"}, 400, "INVALID_PRICE", "stop_loss"),
        ("eth", {"take_profit": "lots"}, 400, "INVALID", "take_profit"),
        ("eth", {"take_profit": ["3400", "3500"]}, 400, "MULTI_LEVEL_TPSL_NOT_SUPPORTED", "take_profit"),
        ("eth", {"stop_loss": [{"price": "3000", "size": "0.5"}]}, 400, "MULTI_LEVEL_TPSL_NOT_SUPPORTED", "stop_loss"),
        ("eth", {"levels": [{"take_profit": "3400"}]}, 400, "MULTI_LEVEL_TPSL_NOT_SUPPORTED", "levels"),
        ("eth", {}, 400, "NOTHING_TO_CHANGE", None),
        ("999999", {"take_profit": "3400"}, 404, "NOT_FOUND", None),
        ("mirror", {"take_profit": "3400"}, 404, "NOT_FOUND", None),
    ],
)
def test_single_tpsl_bad_input_is_refused_and_writes_nothing(desk, path, body, status, code, field):
    position = {"eth": desk.eth, "btc": desk.btc, "mirror": mirrors_of(desk.follower).first().pk}.get(path, path)
    before = footprint()
    refused(desk.post(f"/positions/{position}/tpsl", body), status, code, field)
    assert footprint() == before


def test_tpsl_on_a_closed_position_is_a_conflict(desk):
    desk.world.close(desk.portfolio, desk.eth)
    before = footprint()
    refused(desk.post(f"/positions/{desk.eth}/tpsl", {"take_profit": "3400"}), 409, "POSITION_CLOSED", None)
    assert footprint() == before


@pytest.mark.parametrize(
    ("items", "status", "code", "field"),
    [
        ([], 400, "EMPTY_BATCH", "items"),
        (None, 400, "INVALID_NULL", "items"),
        (
            [{"position": "eth", "take_profit": "3400"}, {"position": "btc", "take_profit": "70000"}],
            400,
            "TPSL_WRONG_SIDE",
            "items.1.take_profit",
        ),
        (
            [{"position": "eth", "take_profit": "3400"}, {"position": "eth", "stop_loss": "3000"}],
            400,
            "DUPLICATE_POSITION",
            "items.1.position",
        ),
        (
            [{"position": "eth", "take_profit": ["3400", "3500"]}],
            400,
            "MULTI_LEVEL_TPSL_NOT_SUPPORTED",
            "items.0.take_profit",
        ),
        ([{"take_profit": "3400"}], 400, "INVALID_REQUIRED", "items.0.position"),
        ([{"position": "eth"}], 400, "NOTHING_TO_CHANGE", None),
        (
            [{"position": "eth", "take_profit": "3400"}, {"position": 999999, "take_profit": "1"}],
            404,
            "NOT_FOUND",
            "items.1.position",
        ),
    ],
)
def test_batch_tpsl_is_all_or_nothing(desk, items, status, code, field):
    def resolve(item):
        return {**item, "position": {"eth": desk.eth, "btc": desk.btc}.get(item.get("position"), item.get("position"))}

    body = {"items": [resolve(i) if "position" in i else i for i in items] if items is not None else None}
    before = footprint()
    refused(desk.post("/positions/tpsl", body), status, code, field)
    assert footprint() == before  # the valid first item was not applied either


def test_a_leverage_edit_changes_the_leaders_margin_and_is_logged_as_not_propagated(desk):
    account = wallet(desk.portfolio)
    eth_margin_before = Position.objects.get(pk=desk.eth).margin
    body = ok(desk.patch(f"/positions/{desk.eth}", {"leverage": 5}), 200)
    (event,) = body["events"]
    assert (event["kind"], event["payload"]["previous_leverage"], event["payload"]["leverage"]) == (
        "position_edit",
        10,
        5,
    )
    position = Position.objects.get(pk=desk.eth)
    assert (position.leverage, position.margin) == (5, D("1280"))  # 2 x 3200 / 5
    assert wallet(desk.portfolio).locked == account.locked + D("1280") - eth_margin_before
    executions = Execution.objects.filter(event_id=event["id"])
    assert [(e.subscription_id, e.outcome, e.reason_code) for e in executions] == [
        (desk.follower.pk, "SKIPPED", "POSITION_EDIT_NOT_PROPAGATED")
    ]
    eth_mirror = mirrors_of(desk.follower).first()
    assert (eth_mirror.leverage, eth_mirror.margin) == (10, D("320"))
    assert ledger_check().ok


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"leverage": 0}, "INVALID_MIN_VALUE", "leverage"),
        ({"leverage": 101}, "INVALID_LEVERAGE", "leverage"),
        ({"leverage": 10}, "LEVERAGE_UNCHANGED", "leverage"),
        ({}, "INVALID_REQUIRED", "leverage"),
        ({"leverage": "x"}, "INVALID", "leverage"),
        ({"quantity": "1"}, "QUANTITY_EDIT_NOT_SUPPORTED", "quantity"),
    ],
)
def test_position_edit_bad_input(desk, body, code, field):
    before = footprint()
    refused(desk.patch(f"/positions/{desk.eth}", body), 400, code, field)
    assert footprint() == before


def test_position_edit_that_would_liquidate_or_needs_more_than_free_is_refused(desk, world):
    world.price(ETH_PERP, "3100")  # the long is 200 down: at 100x its margin would be 64
    before = footprint()
    refused(desk.patch(f"/positions/{desk.eth}", {"leverage": 100}), 400, "LEVERAGE_WOULD_LIQUIDATE", "leverage")
    assert footprint() == before
    # At 1x the 2 ETH need 5760 more margin; leave less than that free.
    world.trade(desk.portfolio, BTC_PERP, "sell", "2.1", leverage=10)  # locks 13440 more: 5280 free
    before = footprint()
    refused(desk.patch(f"/positions/{desk.eth}", {"leverage": 1}), 400, "INSUFFICIENT_FUNDS", "leverage")
    assert footprint() == before
