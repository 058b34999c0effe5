"""SPEC.md §4, margin rows, end to end through the API: one row per leader
action, asserting exactly what the follower ends up with (positions, resting
mirror orders, TP/SL) and the execution log (outcome, reason, size, price).

The follower copies progressively at 0.5 with the default 1 % slippage
tolerance; ETH starts at 3200 and BTC at 64000; the paper spread is 0.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from copytrading import tasks
from copytrading.ledger import ledger_check
from copytrading.models import LeaderEvent, Order
from tests.acceptance.test_bad_input import client_for, ok
from tests.factories import StaffFactory, UserFactory

ETH, BTC = "ETH/USDT:USDT", "BTC/USDT:USDT"


def d(value) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


class Scene:
    def __init__(self, capture):
        self.capture = capture
        self.staff = client_for(StaffFactory(username="ops"))
        self.leader = client_for(UserFactory(username="leader"))
        ok(self.leader.post("/api/v1/wallets/main/deposit", {"amount": "50000"}, format="json"))
        self.portfolio = ok(self.leader.post("/api/v1/portfolios", {"name": "Table"}, format="json"))["id"]
        ok(self.leader.post(f"/api/v1/portfolios/{self.portfolio}/fund", {"amount": "20000"}, format="json"))
        self.follower = client_for(UserFactory(username="follower"))
        ok(self.follower.post("/api/v1/wallets/main/deposit", {"amount": "6000"}, format="json"))
        self.subscription = ok(
            self.follower.post(
                "/api/v1/subscriptions",
                {"portfolio": self.portfolio, "amount": "5000", "multiplier": "0.5"},
                format="json",
            )
        )["id"]
        self.positions: dict[str, int] = {}  # symbol -> the leader's open position
        self.orders: list[int] = []  # the leader's resting orders
        self.response = None

    # --- the leader's actions --------------------------------------------------------

    def _send(self, method: str, path: str, body=None, *, dispatch: bool = True):
        call = getattr(self.leader, method)
        url = f"/api/v1/portfolios/{self.portfolio}{path}"
        if dispatch:
            with self.capture(execute=True):
                self.response = call(url, body, format="json")
        else:
            self.response = call(url, body, format="json")
        if self.response.status_code < 300:
            for event in self.response.json()["events"]:
                if event["kind"] == "position_open":
                    self.positions[event["payload"]["symbol"]] = event["payload"]["leader_position_id"]
                if event["kind"] == "limit_placed":
                    self.orders.append(event["payload"]["leader_order_id"])
        return self.response

    def order(self, symbol, side, quantity, leverage=10, **extra):
        body = {"symbol": symbol, "side": side, "quantity": quantity, "leverage": leverage, **extra}
        return self._send("post", "/orders", body, dispatch=extra.pop("dispatch", True))

    def limit(self, symbol, side, quantity, price, leverage=10):
        return self.order(symbol, side, quantity, leverage, type="limit", price=price)

    def reprice(self, price):
        return self._send("patch", f"/orders/{self.orders[-1]}", {"price": price})

    def cancel(self):
        return self._send("delete", f"/orders/{self.orders[-1]}")

    def close(self, symbol, quantity=None):
        body = {"quantity": quantity} if quantity else {}
        return self._send("post", f"/positions/{self.positions[symbol]}/close", body)

    def tpsl(self, symbol, **prices):
        return self._send("post", f"/positions/{self.positions[symbol]}/tpsl", prices)

    def tpsl_batch(self, *items):
        body = {"items": [{"position": self.positions[symbol], **prices} for symbol, prices in items]}
        return self._send("post", "/positions/tpsl", body)

    def edit_leverage(self, symbol, leverage):
        return self._send("patch", f"/positions/{self.positions[symbol]}", {"leverage": leverage})

    def price(self, symbol, price, *, dispatch: bool = True):
        body = {"symbol": symbol, "price": price}
        if dispatch:
            with self.capture(execute=True):
                ok(self.staff.post("/api/v1/market/prices", body, format="json"), 200)
        else:
            ok(self.staff.post("/api/v1/market/prices", body, format="json"), 200)

    # --- what the follower sees --------------------------------------------------------

    def follower_positions(self) -> list[tuple]:
        rows = self.follower.get(f"/api/v1/subscriptions/{self.subscription}/positions").json()["results"]
        return sorted(
            (
                p["symbol"], p["side"], d(p["quantity"]), d(p["entry_price"]), p["leverage"], p["status"],
                d(p["take_profit"]), d(p["stop_loss"]),
            )
            for p in rows
        )  # fmt: skip

    def follower_orders(self) -> list[tuple]:
        rows = Order.objects.filter(subscription_id=self.subscription, order_type="limit").order_by("pk")
        return [(o.side, o.quantity, o.price, o.status, o.reserved) for o in rows]

    def follower_executions(self) -> list[tuple]:
        rows = self.follower.get(f"/api/v1/subscriptions/{self.subscription}/executions").json()["results"]
        return [
            (e["event_kind"], e["outcome"], e["reason_code"], d(e["follower_quantity"]), d(e["follower_price"]))
            for e in reversed(rows)
        ]


def _slipped_open(s: Scene) -> None:
    # The copy is made after the market moved 3.1 % (3200 → 3300).
    s.order(ETH, "buy", "1", dispatch=False)
    event_id = s.response.json()["events"][0]["id"]
    s.price(ETH, "3300", dispatch=False)
    tasks.propagate_event(event_id)


@dataclass(frozen=True)
class Row:
    action: str
    act: Callable[[Scene], object]
    executions: list[tuple]
    positions: list[tuple] = field(default_factory=list)
    orders: list[tuple] = field(default_factory=list)
    refused: tuple | None = None  # (status, code, field) of the last call


def exe(kind, outcome="COPIED", reason="", quantity=None, price=None) -> tuple:
    return (kind, outcome, reason, d(quantity), d(price))


def pos(symbol, side, quantity, entry, leverage=10, status="open", tp=None, sl=None) -> tuple:
    return (symbol, side, d(quantity), d(entry), leverage, status, d(tp), d(sl))


def order(side, quantity, price, status, reserved) -> tuple:
    return (side, d(quantity), d(price), status, d(reserved))


ROWS = [
    Row(
        "market order opens a position",
        lambda s: s.order(ETH, "buy", "1"),
        [exe("position_open", quantity="0.5", price="3200")],
        [pos(ETH, "long", "0.5", "3200")],
    ),
    Row(
        "market order increases a position",
        lambda s: (s.order(ETH, "buy", "1"), s.price(ETH, "3300"), s.order(ETH, "buy", "1")),
        [exe("position_open", quantity="0.5", price="3200"), exe("position_open", quantity="0.5", price="3300")],
        [pos(ETH, "long", "1", "3250")],
    ),
    Row(
        "limit order placed",
        lambda s: s.limit(ETH, "buy", "1", "3100"),
        [exe("limit_placed", quantity="0.5", price="3100")],
        orders=[order("buy", "0.5", "3100", "open", "155")],
    ),
    Row(
        "limit order fills when the market crosses",
        lambda s: (s.limit(ETH, "buy", "1", "3100"), s.price(ETH, "3100.01"), s.price(ETH, "3100")),
        [exe("limit_placed", quantity="0.5", price="3100"), exe("position_open", "SKIPPED", "MIRROR_LIMIT_FILLED")],
        [pos(ETH, "long", "0.5", "3100")],
        [order("buy", "0.5", "3100", "filled", "0")],
    ),
    Row(
        "limit order price edited while unfilled",
        lambda s: (s.limit(ETH, "buy", "1", "3100"), s.reprice("3050")),
        [exe("limit_placed", quantity="0.5", price="3100"), exe("limit_repriced", quantity="0.5", price="3050")],
        orders=[order("buy", "0.5", "3050", "open", "152.5")],
    ),
    Row(
        "limit order cancelled",
        lambda s: (s.limit(ETH, "sell", "1", "3300"), s.cancel()),
        [exe("limit_placed", quantity="0.5", price="3300"), exe("limit_cancelled", quantity="0.5", price="3300")],
        orders=[order("sell", "0.5", "3300", "cancelled", "0")],
    ),
    Row(
        "TP and SL set on an open position",
        lambda s: (s.order(ETH, "buy", "1"), s.tpsl(ETH, take_profit="3400", stop_loss="3000")),
        [exe("position_open", quantity="0.5", price="3200"), exe("tpsl_set", quantity="0.5")],
        [pos(ETH, "long", "0.5", "3200", tp="3400", sl="3000")],
    ),
    Row(
        "TP and SL edited in a batch",
        lambda s: (
            s.order(ETH, "buy", "1"),
            s.order(BTC, "sell", "0.1"),
            s.tpsl(ETH, take_profit="3400"),
            s.tpsl_batch((ETH, {"stop_loss": "3000"}), (BTC, {"take_profit": "60000", "stop_loss": "66000"})),
        ),
        [
            exe("position_open", quantity="0.5", price="3200"),
            exe("position_open", quantity="0.05", price="64000"),
            exe("tpsl_set", quantity="0.5"),
            exe("tpsl_set", quantity="0.5"),
            exe("tpsl_set", quantity="0.05"),
        ],
        [
            pos(BTC, "short", "0.05", "64000", tp="60000", sl="66000"),
            pos(ETH, "long", "0.5", "3200", tp="3400", sl="3000"),
        ],
    ),
    Row(
        "TP triggers for the leader and the mirror once",
        lambda s: (
            s.order(ETH, "buy", "1"),
            s.tpsl(ETH, take_profit="3400"),
            s.price(ETH, "3400"),
            s.price(ETH, "3400"),
        ),
        [
            exe("position_open", quantity="0.5", price="3200"),
            exe("tpsl_set", quantity="0.5"),
            exe("position_close", "SKIPPED", "NO_MIRROR_POSITION"),
        ],
        [pos(ETH, "long", "0", "3200", status="closed", tp="3400")],
    ),
    Row(
        "partial close reduces by the same fraction",
        lambda s: (s.order(ETH, "buy", "1"), s.close(ETH, "0.4")),
        [exe("position_open", quantity="0.5", price="3200"), exe("position_reduce", quantity="0.2", price="3200")],
        [pos(ETH, "long", "0.3", "3200")],
    ),
    Row(
        "full close closes the mirror",
        lambda s: (s.order(ETH, "buy", "1"), s.price(ETH, "3250"), s.close(ETH)),
        [exe("position_open", quantity="0.5", price="3200"), exe("position_close", quantity="0.5", price="3250")],
        [pos(ETH, "long", "0", "3200", status="closed")],
    ),
    Row(
        "side flip is a close and an open",
        lambda s: (s.order(ETH, "buy", "1"), s.order(ETH, "sell", "3", leverage=5)),
        [
            exe("position_open", quantity="0.5", price="3200"),
            exe("position_close", quantity="0.5", price="3200"),
            exe("position_open", quantity="1", price="3200"),
        ],
        [pos(ETH, "long", "0", "3200", status="closed"), pos(ETH, "short", "1", "3200", leverage=5)],
    ),
    Row(
        "leverage edit of an open position is not propagated",
        lambda s: (s.order(ETH, "buy", "1"), s.edit_leverage(ETH, 5)),
        [
            exe("position_open", quantity="0.5", price="3200"),
            exe("position_edit", "SKIPPED", "POSITION_EDIT_NOT_PROPAGATED"),
        ],
        [pos(ETH, "long", "0.5", "3200")],
    ),
    Row(
        "advanced order type is refused",
        lambda s: s.order(ETH, "buy", "1", type="iceberg"),
        [],
        refused=(400, "ADVANCED_ORDER_NOT_SUPPORTED", "type"),
    ),
    Row(
        "standalone stop order is refused",
        lambda s: s.order(ETH, "sell", "1", type="stop", stop_price="3000"),
        [],
        refused=(400, "STOP_ORDER_NOT_SUPPORTED_FOR_COPY", "type"),
    ),
    Row(
        "multi-level TP/SL is refused",
        lambda s: (s.order(ETH, "buy", "1"), s.tpsl(ETH, take_profit=["3300", "3400"])),
        [exe("position_open", quantity="0.5", price="3200")],
        [pos(ETH, "long", "0.5", "3200")],
        refused=(400, "MULTI_LEVEL_TPSL_NOT_SUPPORTED", "take_profit"),
    ),
    Row(
        "slippage beyond the tolerance rejects the copy",
        _slipped_open,
        [exe("position_open", "REJECTED", "SLIPPAGE_EXCEEDED", quantity="0.5", price="3300")],
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.action for r in ROWS])
def test_spec_propagation_row(row, instruments, settings, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = Decimal("0")
    scene = Scene(django_capture_on_commit_callbacks)
    events_before = LeaderEvent.objects.count()
    row.act(scene)
    if row.refused:
        status, code, name = row.refused
        assert scene.response.status_code == status, scene.response.content
        assert (scene.response.json()["code"], scene.response.json()["field"]) == (code, name)
    else:
        assert scene.response.status_code < 300, scene.response.content
    assert scene.follower_executions() == row.executions
    assert scene.follower_positions() == sorted(row.positions)
    assert scene.follower_orders() == row.orders
    # Every leader event of the row produced exactly one execution for the follower.
    assert LeaderEvent.objects.count() - events_before == len(row.executions)
    report = ledger_check()
    assert report.ok, report


@pytest.mark.parametrize("order_type", ["twap", "iceberg", "scaled", "oco", "oto", "oso", "TWAP"])
def test_every_advanced_order_type_is_refused_before_anything_is_written(
    order_type, instruments, django_capture_on_commit_callbacks
):
    scene = Scene(django_capture_on_commit_callbacks)
    orders_before = Order.objects.count()
    # Even without the fields a plain order needs: the type is refused first.
    response = scene._send("post", "/orders", {"type": order_type, "symbol": ETH})
    assert response.status_code == 400, response.content
    assert (response.json()["code"], response.json()["field"]) == ("ADVANCED_ORDER_NOT_SUPPORTED", "type")
    assert Order.objects.count() == orders_before
    assert not LeaderEvent.objects.exists()
