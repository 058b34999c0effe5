"""The one valuation of positions and spot holdings at a mark
(copytrading/valuation.py), table-driven, and the copy snapshot built on it."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copytrading import valuation
from followers.snapshot import CopyInputs, copy_snapshot
from risk import rules, selectors

D = Decimal

POSITIONS = [
    # side, quantity, entry, margin, mark -> unrealized, notional, margin level %
    ("long", "2", "100", "50", "110", "20.00000000", "220.00000000", "140.00000000"),  # long in profit
    ("long", "2", "100", "50", "90", "-20.00000000", "180.00000000", "60.00000000"),  # long at a loss
    ("short", "2", "100", "50", "90", "20.00000000", "180.00000000", "140.00000000"),  # short in profit
    ("short", "2", "100", "50", "110", "-20.00000000", "220.00000000", "60.00000000"),  # short at a loss
    ("long", "2", "100", "50", "60", "-50.00000000", "120.00000000", "0E-8"),  # loss capped at the margin
    ("short", "2", "100", "50", "200", "-50.00000000", "400.00000000", "0E-8"),  # short capped too
    ("long", "2", "100", "50", "75", "-50.00000000", "150.00000000", "0E-8"),  # exactly the margin
    ("long", "0.5", "3200", "160", "3200", "0E-8", "1600.00000000", "100.00000000"),  # at entry
    ("long", "0.003", "64000.1", "19.20003", "64000.15", "0.00015000", "192.00045000", "100.00078125"),
]


@pytest.mark.parametrize(("side", "qty", "entry", "margin", "mark", "pnl", "notional", "level"), POSITIONS)
def test_position_value(side, qty, entry, margin, mark, pnl, notional, level):
    v = valuation.position_value(side=side, quantity=D(qty), entry_price=D(entry), margin=D(margin), mark=D(mark))
    assert (v.mark_price, v.unrealized_pnl, v.notional, v.margin_level_pct) == (D(mark), D(pnl), D(notional), D(level))
    assert str(v.unrealized_pnl) == pnl  # quantized to 8 places


def test_a_position_without_a_mark_has_no_figures():
    v = valuation.position_value(side="long", quantity=D(1), entry_price=D(1), margin=D(1), mark=None)
    assert v == valuation.NO_POSITION_VALUE == valuation.PositionValue(None, None, None, None)


HOLDINGS = [
    # quantity, cost basis, mark (None: no priced primary-currency pair) -> mark, value, unrealized
    ("0.05", "3200", "65000", "65000", "3250.00000000", "50.00000000"),  # spot in profit
    ("0.05", "3200", "63000", "63000", "3150.00000000", "-50.00000000"),  # spot at a loss
    ("0.025", "1600", None, None, "1600.00000000", None),  # no priced pair: at cost, unrealized null not 0
    ("0.00001", "0.64", "64000.01", "64000.01", "0.64000010", "0.00000010"),
]


@pytest.mark.parametrize(("qty", "cost", "mark", "want_mark", "value", "pnl"), HOLDINGS)
def test_holding_value(qty, cost, mark, want_mark, value, pnl):
    v = valuation.holding_value(quantity=D(qty), cost_basis=D(cost), mark=None if mark is None else D(mark))
    assert v.mark_price == (None if want_mark is None else D(want_mark))
    assert str(v.value) == value
    assert v.unrealized_pnl == (None if pnl is None else D(pnl))


def test_the_watchdog_uses_the_same_valuation():
    # One formula: the watchdog's rules and figures call it rather than holding a copy.
    assert selectors.position_unrealized is valuation.position_unrealized
    assert rules.margin_level_pct is valuation.margin_level_pct


prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)


@given(side=st.sampled_from(["long", "short"]), qty=prices, entry=prices, mark=prices, margin=prices)
def test_the_loss_never_exceeds_the_margin_and_the_level_follows(side, qty, entry, mark, margin):
    v = valuation.position_value(side=side, quantity=qty, entry_price=entry, margin=margin, mark=mark)
    assert v.unrealized_pnl >= -margin
    assert v.margin_level_pct >= 0
    # Profit on one side is the other side's loss (until a cap bites).
    other = valuation.position_value(
        side="short" if side == "long" else "long", quantity=qty, entry_price=entry, margin=margin, mark=mark
    )
    if v.unrealized_pnl > -margin and other.unrealized_pnl > -margin:
        assert v.unrealized_pnl == -other.unrealized_pnl


def inputs(**changes) -> CopyInputs:
    base = {
        "subscription_id": 7,
        "status": "active",
        "pause_reason": "",
        "balance": D("5000"),
        "used_margin": D("160"),
        "margin_unrealized": D("-40"),
        "holdings_value": D("1625"),
        "spot_unrealized": D("25"),
        "realized_today": D("-30"),
        "funded": D("6600"),
        "withdrawn": D("0"),
        "daily_loss_limit_realized": D("100"),
        "daily_loss_limit_unrealized": D("20"),
    }
    return CopyInputs(**(base | changes))


def test_copy_snapshot_hand_computed():
    s = copy_snapshot(inputs())
    # equity 5000 - 40 + 1625 = 6585; total 6585 - 6600 = -15; unrealized -40 + 25 = -15
    assert (s.equity, s.total_pnl, s.unrealized_pnl, s.realized_pnl) == (D("6585"), D("-15"), D("-15"), D("0"))
    assert s.roi_pct == D("-0.23")  # -15 / 6600 = -0.227 %
    assert s.margin_level_pct == D("4115.625")  # 6585 / 160 x 100
    assert (s.realized_loss_today, s.daily_loss_headroom_realized) == (D("30"), D("70"))
    assert (s.unrealized_loss, s.daily_loss_headroom_unrealized) == (D("15"), D("5"))
    assert str(s.equity) == "6585.00000000"


def test_copy_snapshot_headroom_floors_at_zero_and_none_without_limits():
    s = copy_snapshot(inputs(realized_today=D("-150"), margin_unrealized=D("-100")))
    assert (s.daily_loss_headroom_realized, s.daily_loss_headroom_unrealized) == (D(0), D(0))
    s = copy_snapshot(inputs(daily_loss_limit_realized=None, daily_loss_limit_unrealized=None, realized_today=D("5")))
    assert (s.daily_loss_headroom_realized, s.daily_loss_headroom_unrealized) == (None, None)
    assert s.realized_loss_today == D(0)  # a profitable day is no loss
    s = copy_snapshot(inputs(used_margin=D(0), funded=D(0)))
    assert (s.margin_level_pct, s.roi_pct) == (None, D("0.00"))


def test_a_tick_changes_only_the_marked_figures():
    before = inputs()
    after = before.at_marks(margin_unrealized=D("10"), holdings_value=D("1700"), spot_unrealized=D("100"))
    s = copy_snapshot(after)
    assert (s.equity, s.unrealized_pnl, s.realized_pnl) == (D("6710"), D("110"), D("0"))
    assert after.funded == before.funded and after.realized_today == before.realized_today
