"""decisions.decide with a pre-trade check (pure): where in the order of
checks it runs, what it is asked, and which events never ask it."""

from dataclasses import replace
from decimal import Decimal

from copytrading import decisions as d
from copytrading.decisions import Decision, EventView, MirrorOrderView, MirrorView
from tests.copytrading.test_decisions import ACTIVE, MARGIN, OPEN, PAUSED, SPOT, SPOT_BUY, SPOT_SELL

D = Decimal
RICH = D("100000")
NONE_HELD = D(0)


class Gate:
    """Records every question; answers ``reason``."""

    def __init__(self, reason: str | None):
        self.reason = reason
        self.asked: list[tuple] = []

    def __call__(self, subscription_id: int, *, opens_position: bool, notional: Decimal) -> str | None:
        self.asked.append((subscription_id, opens_position, notional))
        return self.reason


def decide(event, *, gate, target=ACTIVE, free=RICH, mirror=None, market=MARGIN, order=None, holding=NONE_HELD):
    return d.decide(
        event, target, free=free, equity=free, mirror=mirror, holding=holding, market=market, mirror_order=order,
        pretrade=gate,
    )  # fmt: skip


def test_a_refusal_rejects_the_sized_copy_with_its_reason():
    gate = Gate("RISK_MAX_EXPOSURE")
    assert decide(OPEN, gate=gate) == Decision(
        d.REJECTED, "RISK_MAX_EXPOSURE", quantity=D("0.05"), price=D("60000"), leverage=10
    )
    assert gate.asked == [(1, True, D("3000"))]  # 0.05 x 60000, a new position


def test_an_increase_is_asked_as_no_new_position_and_a_pass_copies():
    gate = Gate(None)
    decision = decide(OPEN, gate=gate, mirror=MirrorView("long", D("0.05"), 5))
    assert (decision.outcome, decision.action) == (d.COPIED, "increase")
    assert gate.asked == [(1, False, D("3000"))]


def test_the_limits_come_before_free_margin_and_slippage():
    gate = Gate("RISK_MAX_OPEN_POSITIONS")
    assert decide(OPEN, gate=gate, free=D("1")).reason == "RISK_MAX_OPEN_POSITIONS"
    slipped = replace(MARGIN, fill_price_buy=D("70000"))
    assert decide(OPEN, gate=gate, market=slipped).reason == "RISK_MAX_OPEN_POSITIONS"


def test_a_limit_placement_is_asked_at_its_limit_price():
    gate = Gate("RISK_MAX_OPEN_POSITIONS")
    placed = EventView(kind=d.LIMIT_PLACED, order_side="buy", price=D("59000"), quantity=D("0.1"), leverage=10)
    decision = decide(placed, gate=gate)
    assert (decision.outcome, decision.reason, decision.action) == (d.REJECTED, "RISK_MAX_OPEN_POSITIONS", None)
    assert gate.asked == [(1, True, D("2950"))]


def test_closes_reduces_skips_repricing_and_spot_sells_never_ask():
    gate = Gate("RISK_MAX_EXPOSURE")
    mirror = MirrorView("long", D("0.05"), 5)
    close = EventView(kind=d.POSITION_CLOSE, order_side="sell", price=D("59990"))
    reduce = EventView(kind=d.POSITION_REDUCE, order_side="sell", price=D("59990"), fraction=D("0.5"))
    assert decide(close, gate=gate, mirror=mirror).outcome == d.COPIED
    assert decide(reduce, gate=gate, mirror=mirror).outcome == d.COPIED
    assert decide(OPEN, gate=gate, target=PAUSED).reason == d.SUBSCRIPTION_PAUSED
    repriced = EventView(kind=d.LIMIT_REPRICED, order_side="buy", price=D("58000"))
    resting = MirrorOrderView(status="open", quantity=D("0.05"), price=D("59000"), leverage=10, reserved=D("295"))
    assert decide(repriced, gate=gate, order=resting).outcome == d.COPIED
    assert decide(SPOT_SELL, gate=gate, market=SPOT, holding=D("1")).outcome == d.COPIED
    assert gate.asked == []


def test_a_spot_buy_asks_as_a_new_position_unless_the_asset_is_held_above_dust():
    """Spot counts in the pre-trade limits (issue #12): each asset held is a
    position, so buying one not held (or held as dust, below the minimum
    quantity) opens one; the check comes before the funds, as for margin."""
    gate = Gate("RISK_MAX_EXPOSURE")
    for holding, opens in ((D(0), True), (D("0.0005"), True), (D("0.001"), False), (D("3"), False)):
        gate.asked.clear()
        decision = decide(SPOT_BUY, gate=gate, market=SPOT, holding=holding, free=D("1"))
        assert (decision.outcome, decision.reason) == (d.REJECTED, "RISK_MAX_EXPOSURE")
        assert gate.asked == [(1, opens, D("3200"))]  # 1 x 3200
    limit_buy = EventView(kind=d.LIMIT_PLACED, order_side="buy", price=D("3100"), quantity=D("2"))
    gate.asked.clear()
    assert decide(limit_buy, gate=gate, market=SPOT).reason == "RISK_MAX_EXPOSURE"
    assert gate.asked == [(1, True, D("3100"))]
    assert decide(SPOT_BUY, gate=Gate(None), market=SPOT).outcome == d.COPIED
