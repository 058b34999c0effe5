"""Sizing models, parameter ranges and instrument constraints (pure, hypothesis)."""

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from copytrading.sizing import (
    BELOW_MIN_NOTIONAL,
    BELOW_MIN_QUANTITY,
    Constraints,
    SizingModel,
    constrain,
    follower_quantity,
    parameter_error,
)

D = Decimal
UNIT = D("0.00000001")

steps = st.sampled_from([D("0.00001"), D("0.0001"), D("0.001"), D("0.01"), D("0.1"), D("1")])
prices = st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4)
quantities = st.decimals(min_value=D("0"), max_value=D("5000"), places=8)


@st.composite
def constraints(draw) -> Constraints:
    step = draw(steps)
    min_qty = step * draw(st.integers(min_value=1, max_value=50))
    max_qty = min_qty * draw(st.integers(min_value=1, max_value=10_000))
    min_notional = draw(st.decimals(min_value=D("0"), max_value=D("100"), places=2))
    return Constraints(qty_step=step, min_qty=min_qty, max_qty=max_qty, min_notional=min_notional)


# --- constrain ------------------------------------------------------------------


@given(quantity=quantities, price=prices, c=constraints())
def test_constrain_never_exceeds_max_and_lands_on_the_step(quantity, price, c):
    result, _ = constrain(quantity, price, c)
    assert 0 <= result <= c.max_qty
    assert result % c.qty_step == 0
    assert result <= quantity


@given(quantity=quantities, price=prices, c=constraints())
def test_constrain_is_zero_with_a_reason_exactly_when_the_venue_would_refuse(quantity, price, c):
    result, reason = constrain(quantity, price, c)
    if reason is None:
        assert result > 0
        assert result >= c.min_qty
        assert result * price >= c.min_notional
        # Rounded *down* by less than one step: the largest allowed size.
        assert result + c.qty_step > min(quantity, c.max_qty)
    else:
        assert result == 0
        assert reason in (BELOW_MIN_QUANTITY, BELOW_MIN_NOTIONAL)
        # The largest size on the step that does not exceed the request.
        largest = (min(quantity, c.max_qty) // c.qty_step) * c.qty_step
        if reason == BELOW_MIN_QUANTITY:
            assert largest < c.min_qty or largest == 0
        else:
            assert largest >= c.min_qty
            assert largest * price < c.min_notional


@pytest.mark.parametrize(
    ("quantity", "price", "expected"),
    [
        (D("0.0559"), D("60000"), (D("0.055"), None)),  # rounded down to the step
        (D("0.001"), D("60000"), (D("0.001"), None)),  # exactly the minimum
        (D("0.00099999"), D("60000"), (D("0"), BELOW_MIN_QUANTITY)),  # just below it
        (D("250"), D("60000"), (D("100"), None)),  # capped at max
        (D("0.002"), D("2499.99"), (D("0"), BELOW_MIN_NOTIONAL)),  # 4.99998 < 5
        (D("0.002"), D("2500"), (D("0.002"), None)),  # exactly 5
        (D("0"), D("60000"), (D("0"), BELOW_MIN_QUANTITY)),
    ],
)
def test_constrain_examples(quantity, price, expected):
    c = Constraints(qty_step=D("0.001"), min_qty=D("0.001"), max_qty=D("100"), min_notional=D("5"))
    assert constrain(quantity, price, c) == expected


# --- follower_quantity ------------------------------------------------------------


@given(
    leader=st.decimals(min_value=D("0.001"), max_value=D("1000"), places=3),
    multiplier=st.decimals(min_value=UNIT, max_value=D("1"), places=8),
)
def test_progressive_scales_the_leader_quantity(leader, multiplier):
    qty = follower_quantity(model=SizingModel.PROGRESSIVE, leader_quantity=leader, price=D("1"), multiplier=multiplier)
    assert qty == leader * multiplier
    assert qty <= leader  # the multiplier never exceeds 1


@given(
    notional=st.decimals(min_value=D("1"), max_value=D("100000"), places=2),
    price=prices,
    leader=st.decimals(min_value=D("0.001"), max_value=D("1000"), places=3),
)
def test_fixed_spends_the_notional_whatever_the_leader_does(notional, price, leader):
    qty = follower_quantity(model=SizingModel.FIXED, leader_quantity=leader, price=price, fixed_notional=notional)
    other = follower_quantity(model=SizingModel.FIXED, leader_quantity=leader * 2, price=price, fixed_notional=notional)
    assert qty == other
    assert abs(qty * price - notional) <= notional * D("1e-20")


@given(
    leader=st.decimals(min_value=D("0.001"), max_value=D("1000"), places=3),
    follower_equity=st.decimals(min_value=D("1"), max_value=D("1000000"), places=2),
    leader_equity=st.decimals(min_value=D("1"), max_value=D("1000000"), places=2),
    risk=st.decimals(min_value=D("0"), max_value=D("3"), places=2),
)
def test_adaptive_is_proportional_to_the_equity_ratio_and_risk(leader, follower_equity, leader_equity, risk):
    def qty(f_eq, r):
        return follower_quantity(
            model=SizingModel.ADAPTIVE,
            leader_quantity=leader,
            price=D("1"),
            risk_factor=r,
            follower_equity=f_eq,
            leader_equity=leader_equity,
        )

    base = qty(follower_equity, risk)
    assert base >= 0
    # Double the follower's equity: double the size (up to Decimal precision).
    assert abs(qty(follower_equity * 2, risk) - 2 * base) <= base * D("1e-20") + D("1e-20")
    # Equal equity and risk 1: the leader's own size.
    assert (
        follower_quantity(
            model=SizingModel.ADAPTIVE,
            leader_quantity=leader,
            price=D("1"),
            risk_factor=D("1"),
            follower_equity=leader_equity,
            leader_equity=leader_equity,
        )
        == leader
    )
    if risk == 0:
        assert base == 0


def test_adaptive_examples():
    common = {"model": SizingModel.ADAPTIVE, "leader_quantity": D("2"), "price": D("100")}
    assert follower_quantity(**common, risk_factor=D("1.5"), follower_equity=D("1000"), leader_equity=D("10000")) == (
        D("0.3")
    )
    # Without a usable equity on either side there is nothing to scale by.
    assert follower_quantity(**common, risk_factor=D("1"), follower_equity=D("1000"), leader_equity=D("0")) == 0
    assert follower_quantity(**common, risk_factor=D("1"), follower_equity=D("0"), leader_equity=D("10")) == 0


def test_sizing_examples():
    assert follower_quantity(
        model=SizingModel.PROGRESSIVE, leader_quantity=D("0.1"), price=D("60000"), multiplier=D("0.5")
    ) == D("0.05")
    assert follower_quantity(
        model=SizingModel.FIXED, leader_quantity=D("9"), price=D("2500"), fixed_notional=D("500")
    ) == D("0.2")
    with pytest.raises(ValueError):
        follower_quantity(model="martingale", leader_quantity=D("1"), price=D("1"))


# --- parameter ranges -------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "value", "allowed"),
    [
        # progressive: multiplier in (0, 1]
        (SizingModel.PROGRESSIVE, D("-0.00000001"), False),
        (SizingModel.PROGRESSIVE, D("0"), False),
        (SizingModel.PROGRESSIVE, D("0.00000001"), True),
        (SizingModel.PROGRESSIVE, D("0.99999999"), True),
        (SizingModel.PROGRESSIVE, D("1"), True),
        (SizingModel.PROGRESSIVE, D("1.00000001"), False),
        # fixed: notional > 0
        (SizingModel.FIXED, D("-0.00000001"), False),
        (SizingModel.FIXED, D("0"), False),
        (SizingModel.FIXED, D("0.00000001"), True),
        (SizingModel.FIXED, D("1000000000"), True),
        # adaptive: risk in [0, 3]
        (SizingModel.ADAPTIVE, D("-0.00000001"), False),
        (SizingModel.ADAPTIVE, D("0"), True),
        (SizingModel.ADAPTIVE, D("0.00000001"), True),
        (SizingModel.ADAPTIVE, D("2.99999999"), True),
        (SizingModel.ADAPTIVE, D("3"), True),
        (SizingModel.ADAPTIVE, D("3.00000001"), False),
    ],
)
def test_parameter_ranges_at_and_around_each_bound(model, value, allowed):
    error = parameter_error(model, value)
    if allowed:
        assert error is None
    else:
        assert error is not None
        name = {"progressive": "multiplier", "fixed": "fixed_notional", "adaptive": "risk_factor"}[model]
        assert name in error


def test_parameter_range_messages_name_the_range():
    assert parameter_error(SizingModel.PROGRESSIVE, D("2")) == "multiplier in (0, 1]"
    assert parameter_error(SizingModel.FIXED, D("0")) == "fixed_notional > 0"
    assert parameter_error(SizingModel.ADAPTIVE, D("4")) == "risk_factor in [0, 3]"
    assert parameter_error(SizingModel.ADAPTIVE, None) == "risk_factor in [0, 3] is required"
    assert "sizing_model must be one of" in parameter_error("martingale", D("1"))


@given(value=st.decimals(min_value=D("-10"), max_value=D("10"), places=8))
def test_parameter_error_agrees_with_the_documented_ranges(value):
    assume(value.is_finite())
    assert (parameter_error(SizingModel.PROGRESSIVE, value) is None) == (0 < value <= 1)
    assert (parameter_error(SizingModel.FIXED, value) is None) == (value > 0)
    assert (parameter_error(SizingModel.ADAPTIVE, value) is None) == (0 <= value <= 3)
