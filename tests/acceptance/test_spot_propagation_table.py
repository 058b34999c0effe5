"""SPEC.md §4, spot rows, end to end through the services and the eager
Celery dispatch: one row per leader action, asserting exactly what each
follower ends up with (holdings, cash, orders, ledger transfers) and the
execution log (outcome, reason, size, price).

Followers (copy wallets of 5000 USDT, the primary currency):
- ``half``: progressive 0.5
- ``odd``: progressive 0.3333 (its sizes need step rounding: ETH/USDT's step is 0.0001)
- ``fixed``: fixed notional 1000 USDT
- ``late``: progressive 0.5, subscribed after the leader's buy, so it holds nothing

ETH/USDT starts at 3200, BTC/USDT at 64000, ETH/BTC at 0.05; the paper spread is 0.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from copytrading.ledger import ledger_check
from copytrading.models import Execution, Holding, LeaderEvent, Order, Transfer
from tests.copytrading.world import World, wallet

D = Decimal
ETH, BTC, ETH_BTC = "ETH/USDT", "BTC/USDT", "ETH/BTC"
EARLY = ("half", "odd", "fixed")


class SpotScene:
    def __init__(self, world: World):
        self.world = world
        self.portfolio = world.leader(mode="spot")
        self.subs = {
            "half": world.follower(self.portfolio, multiplier="0.5"),
            "odd": world.follower(self.portfolio, multiplier="0.3333"),
            "fixed": world.follower(self.portfolio, multiplier="0.5", sizing_model="fixed", fixed_notional=D("1000")),
        }
        self.events = 0  # leader events the row's actions recorded

    def trade(self, symbol: str, side: str, quantity: str) -> None:
        self.events += len(self.world.trade(self.portfolio, symbol, side, quantity, leverage=1))

    def limit(self, symbol: str, side: str, quantity: str, price: str) -> int:
        """The leader's limit order; returns its id."""
        event = self.world.limit(self.portfolio, symbol, side, quantity, price, leverage=1)
        self.events += 1
        return event.payload["leader_order_id"]

    def reprice(self, order_id: int, price: str) -> None:
        self.world.reprice(self.portfolio, order_id, price)
        self.events += 1

    def cancel(self, order_id: int) -> None:
        self.world.cancel(self.portfolio, order_id)
        self.events += 1

    def price(self, symbol: str, price: str) -> None:
        self.events += len(self.world.price(symbol, price))

    def late_follower(self) -> None:
        self.subs["late"] = self.world.follower(self.portfolio, multiplier="0.5")

    # --- what each follower sees -------------------------------------------------------

    def executions(self, name: str) -> list[tuple]:
        rows = Execution.objects.filter(subscription_id=self.subs[name].pk).select_related("event").order_by("pk")
        return [
            (e.event.kind, e.outcome, e.reason_code, e.follower_quantity, e.follower_price, e.order_id is not None)
            for e in rows
        ]

    def holdings(self, name: str) -> dict[str, Decimal]:
        rows = Holding.objects.filter(account_id=self.subs[name].copy_account_id)
        return {h.asset: h.quantity for h in rows if h.quantity}

    def reserved(self, name: str) -> dict[str, Decimal]:
        rows = Holding.objects.filter(account_id=self.subs[name].copy_account_id)
        return {h.asset: h.reserved for h in rows if h.reserved}

    def orders(self, name: str) -> list[tuple]:
        rows = Order.objects.filter(account_id=self.subs[name].copy_account_id).order_by("pk")
        return [(o.instrument.symbol, o.side, o.quantity, o.price, o.status) for o in rows]

    def trade_transfers(self, name: str) -> int:
        """Transfers on the copy wallet other than its funding at subscribe."""
        account = self.subs[name].copy_account_id
        return (
            Transfer.objects.filter(debit_id=account).count() + Transfer.objects.filter(credit_id=account).count() - 1
        )


def exe(kind, outcome="COPIED", reason="", quantity=None, price=None) -> tuple:
    q, p = (D(quantity), D(price)) if quantity is not None else (None, None)
    return (kind, outcome, reason, q, p, outcome == "COPIED")


@dataclass(frozen=True)
class Expect:
    executions: list[tuple]
    holdings: dict[str, str] = field(default_factory=dict)
    balance: str = "5000"
    orders: list[tuple] = field(default_factory=list)
    locked: str = "0"  # cash a resting buy holds
    reserved: dict[str, str] = field(default_factory=dict)  # holdings a resting sell holds


def o(symbol, side, quantity, price, status="filled") -> tuple:
    return (symbol, side, D(quantity), D(price), status)


@dataclass(frozen=True)
class Row:
    action: str
    act: Callable[[SpotScene], object]
    followers: dict[str, Expect]
    leader_holdings: dict[str, str]
    leader_locked: str = "0"
    leader_reserved: dict[str, str] = field(default_factory=dict)


def _buy(s):
    s.trade(ETH, "buy", "2")


def _buy_then_sell_a_quarter(s):
    s.trade(ETH, "buy", "2")
    s.world.price(ETH, "3300")
    s.trade(ETH, "sell", "0.5")  # fraction 0.25 of the leader's 2 ETH


def _late_follower_sells_nothing(s):
    s.trade(ETH, "buy", "2")
    s.late_follower()
    s.trade(ETH, "sell", "0.5")


def _quote_mismatch(s):
    s.trade(BTC, "buy", "0.1")  # the BTC that pays for ETH/BTC (and the copy of this buy)
    s.trade(ETH_BTC, "buy", "1")
    s.trade(ETH_BTC, "sell", "0.5")


def _limit_buy_fills(s):
    s.limit(ETH, "buy", "2", "3100")
    s.late_follower()  # subscribed while the order rests: it has no mirror limit
    s.price(ETH, "3100")


def _limit_sell_fills(s):
    s.trade(ETH, "buy", "2")
    s.late_follower()
    s.limit(ETH, "sell", "0.5", "3300")  # fraction 0.25 of the leader's 2 ETH
    s.price(ETH, "3300")


def _limit_buy_repriced(s):
    order_id = s.limit(ETH, "buy", "2", "3100")
    s.reprice(order_id, "3000")


def _limit_sell_repriced(s):
    s.trade(ETH, "buy", "2")
    order_id = s.limit(ETH, "sell", "0.5", "3300")
    s.reprice(order_id, "3400")


def _limits_cancelled(s):
    s.trade(ETH, "buy", "2")
    buy_id = s.limit(ETH, "buy", "1", "3000")
    sell_id = s.limit(ETH, "sell", "1", "3400")  # fraction 0.5
    s.cancel(buy_id)
    s.cancel(sell_id)


def _quote_mismatch_limit(s):
    s.trade(BTC, "buy", "0.1")
    s.limit(ETH_BTC, "buy", "1", "0.049")  # reserves 0.049 BTC of the leader's
    s.price(ETH_BTC, "0.049")


BTC_BUY = {
    # 0.1 x 0.5 = 0.05 BTC for 3200; 0.1 x 0.3333 = 0.03333; 1000 / 64000 = 0.015625 → 0.01562 (step 0.00001)
    "half": (exe("spot_buy", quantity="0.05", price="64000"), {"BTC": "0.05"}, "1800", o(BTC, "buy", "0.05", "64000")),
    "odd": (
        exe("spot_buy", quantity="0.03333", price="64000"),
        {"BTC": "0.03333"},
        "2866.88",
        o(BTC, "buy", "0.03333", "64000"),
    ),
    "fixed": (
        exe("spot_buy", quantity="0.01562", price="64000"),
        {"BTC": "0.01562"},
        "4000.32",
        o(BTC, "buy", "0.01562", "64000"),
    ),
}

ROWS = [
    Row(
        "spot buy is sized by the model and paid in the primary currency",
        _buy,
        {
            # 2 x 0.5 = 1 ETH for 3200 USDT
            "half": Expect(
                [exe("spot_buy", quantity="1", price="3200")], {"ETH": "1"}, "1800", [o(ETH, "buy", "1", "3200")]
            ),
            # 2 x 0.3333 = 0.6666 ETH for 2133.12
            "odd": Expect(
                [exe("spot_buy", quantity="0.6666", price="3200")],
                {"ETH": "0.6666"},
                "2866.88",
                [o(ETH, "buy", "0.6666", "3200")],
            ),
            # 1000 / 3200 = 0.3125 ETH for 1000
            "fixed": Expect(
                [exe("spot_buy", quantity="0.3125", price="3200")],
                {"ETH": "0.3125"},
                "4000",
                [o(ETH, "buy", "0.3125", "3200")],
            ),
        },
        {"ETH": "2"},
    ),
    Row(
        "spot sell sells the same fraction of each follower's holding",
        _buy_then_sell_a_quarter,
        {
            # 1 x 0.25 = 0.25 at 3300: 1800 + 825
            "half": Expect(
                [exe("spot_buy", quantity="1", price="3200"), exe("spot_sell", quantity="0.25", price="3300")],
                {"ETH": "0.75"},
                "2625",
                [o(ETH, "buy", "1", "3200"), o(ETH, "sell", "0.25", "3300")],
            ),
            # 0.6666 x 0.25 = 0.16665 → 0.1666 (rounded down to the step) at 3300: 2866.88 + 549.78
            "odd": Expect(
                [exe("spot_buy", quantity="0.6666", price="3200"), exe("spot_sell", quantity="0.1666", price="3300")],
                {"ETH": "0.5"},
                "3416.66",
                [o(ETH, "buy", "0.6666", "3200"), o(ETH, "sell", "0.1666", "3300")],
            ),
            # 0.3125 x 0.25 = 0.078125 → 0.0781 at 3300: 4000 + 257.73
            "fixed": Expect(
                [exe("spot_buy", quantity="0.3125", price="3200"), exe("spot_sell", quantity="0.0781", price="3300")],
                {"ETH": "0.2344"},
                "4257.73",
                [o(ETH, "buy", "0.3125", "3200"), o(ETH, "sell", "0.0781", "3300")],
            ),
        },
        {"ETH": "1.5"},
    ),
    Row(
        "spot sell skips a follower with no holding, silently",
        _late_follower_sells_nothing,
        {
            "half": Expect(
                [exe("spot_buy", quantity="1", price="3200"), exe("spot_sell", quantity="0.25", price="3200")],
                {"ETH": "0.75"},
                "2600",
                [o(ETH, "buy", "1", "3200"), o(ETH, "sell", "0.25", "3200")],
            ),
            "late": Expect([exe("spot_sell", "SKIPPED", "NO_HOLDING_TO_SELL")]),
        },
        {"ETH": "1.5"},
    ),
    Row(
        "non-primary quote pair is skipped while the leader trades",
        _quote_mismatch,
        {
            name: Expect(
                [
                    buy,
                    exe("spot_buy", "SKIPPED", "SPOT_PAIR_QUOTE_MISMATCH"),
                    exe("spot_sell", "SKIPPED", "SPOT_PAIR_QUOTE_MISMATCH"),
                ],
                held,
                balance,
                [order],
            )
            for name, (buy, held, balance, order) in BTC_BUY.items()
        },
        # The leader paid 1 x 0.05 BTC for 1 ETH and got 0.5 x 0.05 back for half of it.
        {"BTC": "0.075", "ETH": "0.5"},
    ),
    Row(
        "spot limit buy rests with its cost reserved, then fills with the leader's at its price",
        _limit_buy_fills,
        {
            # 2 x 0.5 = 1 ETH at 3100; the fill event finds the mirror filled already.
            "half": Expect(
                [exe("limit_placed", quantity="1", price="3100"), exe("spot_buy", "SKIPPED", "MIRROR_LIMIT_FILLED")],
                {"ETH": "1"},
                "1900",
                [o(ETH, "buy", "1", "3100")],
            ),
            # 2 x 0.3333 = 0.6666 at 3100 = 2066.46
            "odd": Expect(
                [
                    exe("limit_placed", quantity="0.6666", price="3100"),
                    exe("spot_buy", "SKIPPED", "MIRROR_LIMIT_FILLED"),
                ],
                {"ETH": "0.6666"},
                "2933.54",
                [o(ETH, "buy", "0.6666", "3100")],
            ),
            # sized at the limit price: 1000 / 3100 = 0.32258 → 0.3225, 999.75
            "fixed": Expect(
                [
                    exe("limit_placed", quantity="0.3225", price="3100"),
                    exe("spot_buy", "SKIPPED", "MIRROR_LIMIT_FILLED"),
                ],
                {"ETH": "0.3225"},
                "4000.25",
                [o(ETH, "buy", "0.3225", "3100")],
            ),
            # no mirror limit: the fill is copied like a market buy, at the mark (3100)
            "late": Expect(
                [exe("spot_buy", quantity="1", price="3100")], {"ETH": "1"}, "1900", [o(ETH, "buy", "1", "3100")]
            ),
        },
        {"ETH": "2"},
    ),
    Row(
        "spot limit sell rests the leader's fraction of each holding, reserved, then fills",
        _limit_sell_fills,
        {
            "half": Expect(
                [
                    exe("spot_buy", quantity="1", price="3200"),
                    exe("limit_placed", quantity="0.25", price="3300"),
                    exe("spot_sell", "SKIPPED", "MIRROR_LIMIT_FILLED"),
                ],
                {"ETH": "0.75"},
                "2625",
                [o(ETH, "buy", "1", "3200"), o(ETH, "sell", "0.25", "3300")],
            ),
            # 0.6666 x 0.25 → 0.1666 at 3300: 2866.88 + 549.78
            "odd": Expect(
                [
                    exe("spot_buy", quantity="0.6666", price="3200"),
                    exe("limit_placed", quantity="0.1666", price="3300"),
                    exe("spot_sell", "SKIPPED", "MIRROR_LIMIT_FILLED"),
                ],
                {"ETH": "0.5"},
                "3416.66",
                [o(ETH, "buy", "0.6666", "3200"), o(ETH, "sell", "0.1666", "3300")],
            ),
            # 0.3125 x 0.25 → 0.0781 at 3300: 4000 + 257.73
            "fixed": Expect(
                [
                    exe("spot_buy", quantity="0.3125", price="3200"),
                    exe("limit_placed", quantity="0.0781", price="3300"),
                    exe("spot_sell", "SKIPPED", "MIRROR_LIMIT_FILLED"),
                ],
                {"ETH": "0.2344"},
                "4257.73",
                [o(ETH, "buy", "0.3125", "3200"), o(ETH, "sell", "0.0781", "3300")],
            ),
            "late": Expect(
                [
                    exe("limit_placed", "SKIPPED", "NO_HOLDING_TO_SELL"),
                    exe("spot_sell", "SKIPPED", "NO_HOLDING_TO_SELL"),
                ]
            ),
        },
        {"ETH": "1.5"},
    ),
    Row(
        "spot limit buy re-price moves each mirror and its reserved cost",
        _limit_buy_repriced,
        {
            "half": Expect(
                [exe("limit_placed", quantity="1", price="3100"), exe("limit_repriced", quantity="1", price="3000")],
                orders=[o(ETH, "buy", "1", "3000", "open")],
                locked="3000",
            ),
            "odd": Expect(
                [
                    exe("limit_placed", quantity="0.6666", price="3100"),
                    exe("limit_repriced", quantity="0.6666", price="3000"),
                ],
                orders=[o(ETH, "buy", "0.6666", "3000", "open")],
                locked="1999.8",
            ),
            # the quantity sized at placement stays: 0.3225 x 3000
            "fixed": Expect(
                [
                    exe("limit_placed", quantity="0.3225", price="3100"),
                    exe("limit_repriced", quantity="0.3225", price="3000"),
                ],
                orders=[o(ETH, "buy", "0.3225", "3000", "open")],
                locked="967.5",
            ),
        },
        {},
        leader_locked="6000",
    ),
    Row(
        "spot limit sell re-price moves each mirror and keeps its reserved quantity",
        _limit_sell_repriced,
        {
            "half": Expect(
                [
                    exe("spot_buy", quantity="1", price="3200"),
                    exe("limit_placed", quantity="0.25", price="3300"),
                    exe("limit_repriced", quantity="0.25", price="3400"),
                ],
                {"ETH": "1"},
                "1800",
                [o(ETH, "buy", "1", "3200"), o(ETH, "sell", "0.25", "3400", "open")],
                reserved={"ETH": "0.25"},
            ),
            "odd": Expect(
                [
                    exe("spot_buy", quantity="0.6666", price="3200"),
                    exe("limit_placed", quantity="0.1666", price="3300"),
                    exe("limit_repriced", quantity="0.1666", price="3400"),
                ],
                {"ETH": "0.6666"},
                "2866.88",
                [o(ETH, "buy", "0.6666", "3200"), o(ETH, "sell", "0.1666", "3400", "open")],
                reserved={"ETH": "0.1666"},
            ),
            "fixed": Expect(
                [
                    exe("spot_buy", quantity="0.3125", price="3200"),
                    exe("limit_placed", quantity="0.0781", price="3300"),
                    exe("limit_repriced", quantity="0.0781", price="3400"),
                ],
                {"ETH": "0.3125"},
                "4000",
                [o(ETH, "buy", "0.3125", "3200"), o(ETH, "sell", "0.0781", "3400", "open")],
                reserved={"ETH": "0.0781"},
            ),
        },
        {"ETH": "2"},
        leader_reserved={"ETH": "0.5"},
    ),
    Row(
        "spot limit cancel cancels each mirror and releases its cash or holding",
        _limits_cancelled,
        {
            # buy 1 x 0.5 at 3000; sell 0.5 of the 1 ETH held at 3400
            "half": Expect(
                [
                    exe("spot_buy", quantity="1", price="3200"),
                    exe("limit_placed", quantity="0.5", price="3000"),
                    exe("limit_placed", quantity="0.5", price="3400"),
                    exe("limit_cancelled", quantity="0.5", price="3000"),
                    exe("limit_cancelled", quantity="0.5", price="3400"),
                ],
                {"ETH": "1"},
                "1800",
                [
                    o(ETH, "buy", "1", "3200"),
                    o(ETH, "buy", "0.5", "3000", "cancelled"),
                    o(ETH, "sell", "0.5", "3400", "cancelled"),
                ],
            ),
            "odd": Expect(
                [
                    exe("spot_buy", quantity="0.6666", price="3200"),
                    exe("limit_placed", quantity="0.3333", price="3000"),
                    exe("limit_placed", quantity="0.3333", price="3400"),
                    exe("limit_cancelled", quantity="0.3333", price="3000"),
                    exe("limit_cancelled", quantity="0.3333", price="3400"),
                ],
                {"ETH": "0.6666"},
                "2866.88",
                [
                    o(ETH, "buy", "0.6666", "3200"),
                    o(ETH, "buy", "0.3333", "3000", "cancelled"),
                    o(ETH, "sell", "0.3333", "3400", "cancelled"),
                ],
            ),
            # buy 1000 / 3000 → 0.3333; sell 0.3125 x 0.5 → 0.1562
            "fixed": Expect(
                [
                    exe("spot_buy", quantity="0.3125", price="3200"),
                    exe("limit_placed", quantity="0.3333", price="3000"),
                    exe("limit_placed", quantity="0.1562", price="3400"),
                    exe("limit_cancelled", quantity="0.3333", price="3000"),
                    exe("limit_cancelled", quantity="0.1562", price="3400"),
                ],
                {"ETH": "0.3125"},
                "4000",
                [
                    o(ETH, "buy", "0.3125", "3200"),
                    o(ETH, "buy", "0.3333", "3000", "cancelled"),
                    o(ETH, "sell", "0.1562", "3400", "cancelled"),
                ],
            ),
        },
        {"ETH": "2"},
    ),
    Row(
        "non-primary quote limit is skipped while the leader's rests on its quote asset and fills",
        _quote_mismatch_limit,
        {
            name: Expect(
                [
                    buy,
                    exe("limit_placed", "SKIPPED", "SPOT_PAIR_QUOTE_MISMATCH"),
                    exe("spot_buy", "SKIPPED", "SPOT_PAIR_QUOTE_MISMATCH"),
                ],
                held,
                balance,
                [order],
            )
            for name, (buy, held, balance, order) in BTC_BUY.items()
        },
        # 0.1 BTC less 1 x 0.049 paid at the limit price
        {"BTC": "0.051", "ETH": "1"},
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.action for r in ROWS])
def test_spec_spot_propagation_row(row, settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    scene = SpotScene(World(instruments, django_capture_on_commit_callbacks))
    row.act(scene)
    assert sorted(scene.subs) == sorted(set(EARLY) | set(row.followers))
    for name, expect in row.followers.items():
        assert scene.executions(name) == expect.executions, name
        assert scene.holdings(name) == {k: D(v) for k, v in expect.holdings.items()}, name
        assert wallet(scene.subs[name]).balance == D(expect.balance), name
        assert scene.orders(name) == expect.orders, name
        assert wallet(scene.subs[name]).locked == D(expect.locked), name
        assert scene.reserved(name) == {k: D(v) for k, v in expect.reserved.items()}, name
        # Every filled order moved cash one way (spot settles in the wallet); nothing else.
        filled = [order for order in expect.orders if order[-1] == "filled"]
        assert scene.trade_transfers(name) == len(filled), name
    leader = Holding.objects.filter(account_id=scene.portfolio.trading_account_id)
    assert {h.asset: h.quantity for h in leader if h.quantity} == {k: D(v) for k, v in row.leader_holdings.items()}
    assert {h.asset: h.reserved for h in leader if h.reserved} == {k: D(v) for k, v in row.leader_reserved.items()}
    assert wallet(scene.portfolio).locked == D(row.leader_locked)
    # Every leader event produced one execution per follower subscribed at the time.
    events = LeaderEvent.objects.filter(portfolio_id=scene.portfolio.pk)
    assert events.count() == scene.events
    assert Execution.objects.filter(event__in=events).count() == sum(len(scene.executions(name)) for name in scene.subs)
    report = ledger_check()
    assert report.ok, report
