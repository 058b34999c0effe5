"""Profit-share arithmetic (pure): exact splits, never over-charging."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fees import math as fee_math

D = Decimal
profits = st.decimals(min_value=D("-100000"), max_value=D("100000"), places=8)
pcts = st.decimals(min_value=D("0"), max_value=D("100"), places=2)


def test_worked_example_fifteen_percent_share_forty_percent_platform_cut():
    split = fee_math.fee_split(profit=D("100.00"), share_pct=D("15.00"), platform_cut_pct=D("40.00"))
    assert (split.fee, split.platform_part, split.leader_part) == (D("15.00"), D("6.00"), D("9.00"))


@pytest.mark.parametrize("profit", ["0", "-0.00000001", "-250.5"])
def test_a_loss_or_break_even_pays_nothing(profit):
    assert fee_math.fee_split(profit=D(profit), share_pct=D("30.00"), platform_cut_pct=D("20.00")) == fee_math.NO_FEE


def test_rounding_is_down_at_the_eighth_place():
    # 0.00000007 * 15 % = 0.0000000105 -> 0.00000001; its 40 % cut rounds to 0.
    split = fee_math.fee_split(profit=D("0.00000007"), share_pct=D("15.00"), platform_cut_pct=D("40.00"))
    assert (split.fee, split.platform_part, split.leader_part) == (D("0.00000001"), D("0"), D("0.00000001"))
    # A profit too small for one unit of fee pays nothing.
    assert fee_math.fee_split(profit=D("0.00000006"), share_pct=D("15.00"), platform_cut_pct=D("40.00")).fee == 0


@given(profit=profits, share=pcts, cut=pcts)
def test_split_is_exact_and_never_over_charges(profit, share, cut):
    split = fee_math.fee_split(profit=profit, share_pct=share, platform_cut_pct=cut)
    assert split.platform_part + split.leader_part == split.fee
    assert min(split.fee, split.platform_part, split.leader_part) >= 0
    for part in (split.fee, split.platform_part, split.leader_part):
        assert part == part.quantize(D("0.00000001"))
    if profit <= 0:
        assert split.fee == 0
    else:
        exact = profit * share / 100
        # Rounded down, by less than one unit of 1e-8.
        assert exact - D("0.00000001") < split.fee <= exact
        assert split.platform_part <= split.fee * cut / 100


@given(profit=profits, share=pcts, cut=pcts, available=st.decimals(min_value=0, max_value=D("50000"), places=8))
def test_a_charge_never_exceeds_the_free_balance_nor_the_fee(profit, share, cut, available):
    due = fee_math.fee_split(profit=profit, share_pct=share, platform_cut_pct=cut)
    charged = fee_math.fee_charge(due, available=available, platform_cut_pct=cut)
    assert charged.fee == min(due.fee, available)
    assert charged.platform_part + charged.leader_part == charged.fee


@pytest.mark.parametrize("bad", ["-1", "100.01", "15.001", "NaN"])
def test_percentages_out_of_range_are_refused(bad):
    with pytest.raises(ValueError):
        fee_math.fee_split(profit=D("10"), share_pct=D(bad), platform_cut_pct=D("20"))


@pytest.mark.parametrize(
    ("requested", "moved"),
    [("10.019", "10.01"), ("10.01", "10.01"), ("0.009", "0.00"), ("1.00999999", "1.00"), ("123.45678901", "123.45")],
)
def test_withdrawals_move_whole_cents_rounded_down(requested, moved):
    assert fee_math.withdrawal_amount(D(requested)) == D(moved)


@given(st.decimals(min_value=0, max_value=D("1000000"), places=8))
def test_withdrawal_amount_is_the_largest_whole_cent_not_above_the_request(requested):
    moved = fee_math.withdrawal_amount(requested)
    assert moved == moved.quantize(D("0.01"))
    assert moved <= requested < moved + D("0.01")
