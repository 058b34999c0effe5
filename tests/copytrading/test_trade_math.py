"""Paper-venue arithmetic (pure, hypothesis)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copytrading import trade_math as tm

D = Decimal
UNIT = D("0.00000001")

sides = st.sampled_from([tm.BUY, tm.SELL])
position_sides = st.sampled_from([tm.LONG, tm.SHORT])
sizes = st.integers(min_value=1, max_value=100_000).map(lambda n: D(n) * D("0.001"))
prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
leverages = st.integers(min_value=1, max_value=125)


def signed(side: str, quantity: Decimal) -> Decimal:
    return quantity if side == tm.LONG else -quantity


# --- plan_order -------------------------------------------------------------------


@given(
    position_side=st.none() | position_sides,
    position_qty=sizes,
    order_side=sides,
    quantity=sizes,
)
def test_plan_order_nets_like_one_way_mode(position_side, position_qty, order_side, quantity):
    held = position_qty if position_side else D(0)
    steps = tm.plan_order(position_side, held, order_side, quantity)
    actions = [s.action for s in steps]

    # Quantities add up to the order, and never two opening steps.
    assert sum(s.quantity for s in steps) == quantity
    assert sum(a in (tm.OPEN, tm.INCREASE) for a in actions) <= 1
    assert all(s.quantity > 0 for s in steps)

    # Applying the steps gives the net position: old ± order.
    net = signed(position_side, held) if position_side else D(0)
    for s in steps:
        if s.action in (tm.OPEN, tm.INCREASE):
            net += signed(s.side, s.quantity)
        else:
            assert s.side == position_side
            assert s.quantity <= held
            net -= signed(position_side, s.quantity)
    order_signed = quantity if order_side == tm.BUY else -quantity
    start = signed(position_side, held) if position_side else D(0)
    assert net == start + order_signed


@given(position_side=position_sides, position_qty=sizes, extra=sizes)
def test_a_side_flip_is_exactly_close_then_open(position_side, position_qty, extra):
    order_side = tm.closing_side(position_side)
    steps = tm.plan_order(position_side, position_qty, order_side, position_qty + extra)
    assert [s.action for s in steps] == [tm.CLOSE, tm.OPEN]
    close, open_ = steps
    assert close.quantity == position_qty and close.side == position_side
    assert open_.quantity == extra and open_.side == tm.side_of(order_side) != position_side


@pytest.mark.parametrize(
    ("position", "order", "expected"),
    [
        ((None, "0"), ("buy", "1"), [("open", "1", "long")]),
        ((None, "0"), ("sell", "1"), [("open", "1", "short")]),
        (("long", "2"), ("buy", "1"), [("increase", "1", "long")]),
        (("long", "2"), ("sell", "0.5"), [("reduce", "0.5", "long")]),
        (("long", "2"), ("sell", "2"), [("close", "2", "long")]),
        (("long", "2"), ("sell", "3"), [("close", "2", "long"), ("open", "1", "short")]),
        (("short", "2"), ("buy", "5"), [("close", "2", "short"), ("open", "3", "long")]),
    ],
)
def test_plan_order_examples(position, order, expected):
    steps = tm.plan_order(position[0], D(position[1]), order[0], D(order[1]))
    assert [(s.action, s.quantity, s.side) for s in steps] == [(a, D(q), side) for a, q, side in expected]


# --- close_part -------------------------------------------------------------------


@given(
    side=position_sides,
    quantity=sizes,
    parts=st.integers(min_value=1, max_value=5),
    entry=prices,
    exit_price=prices,
    leverage=leverages,
)
def test_partial_closes_release_the_whole_margin_and_never_lose_more(
    side, quantity, parts, entry, exit_price, leverage
):
    margin = tm.margin_for(quantity, entry, leverage)
    left_qty, left_margin = quantity, margin
    released_total = D(0)
    # Close in ``parts`` slices; the last one closes whatever is left.
    for n in range(parts):
        closed = left_qty if n == parts - 1 else (left_qty / 2).quantize(D("0.001"))
        if closed <= 0:
            continue
        r = tm.close_part(
            side=side, quantity=left_qty, closed=closed, entry=entry, margin=left_margin, exit_price=exit_price
        )
        assert 0 <= r.released_margin <= left_margin
        if closed == left_qty:
            assert r.released_margin == left_margin
        else:
            assert abs(r.released_margin - left_margin * closed / left_qty) <= UNIT / 2
        assert r.pnl == tm.pnl(side, closed, entry, exit_price)
        # An isolated position loses at most the margin it releases; profits are paid in full.
        assert r.settled >= -r.released_margin
        assert r.settled == (r.pnl if r.pnl >= 0 else max(r.pnl, -r.released_margin))
        released_total += r.released_margin
        left_qty -= closed
        left_margin -= r.released_margin
    assert left_qty == 0
    assert left_margin == 0
    assert released_total == margin


def test_close_part_examples():
    # Long 1 @ 100 with 10 margin, price down to 80: the 20 loss is capped at the 10 margin.
    r = tm.close_part(side=tm.LONG, quantity=D("1"), closed=D("1"), entry=D("100"), margin=D("10"), exit_price=D("80"))
    assert (r.released_margin, r.pnl, r.settled) == (D("10"), D("-20.00000000"), D("-10"))
    # Close 30 % of a short in profit: 30 % of the margin comes back with the profit.
    r = tm.close_part(
        side=tm.SHORT, quantity=D("10"), closed=D("3"), entry=D("3000"), margin=D("3000"), exit_price=D("2900")
    )
    assert (r.released_margin, r.pnl, r.settled) == (D("900"), D("300"), D("300"))


# --- margin_for, fill_price, pnl ----------------------------------------------------


@given(quantity=sizes, price=prices, leverage=leverages)
def test_margin_rounds_up_to_the_smallest_unit(quantity, price, leverage):
    margin = tm.margin_for(quantity, price, leverage)
    exact = quantity * price / leverage
    assert margin == margin.quantize(UNIT)
    assert margin >= exact
    assert margin - exact < UNIT


def test_margin_examples():
    assert tm.margin_for(D("0.05"), D("60000"), 10) == D("300")
    assert tm.margin_for(D("1"), D("1"), 3) == D("0.33333334")


@given(
    mark=st.decimals(min_value=D("0.01"), max_value=D("100000"), places=8),
    side=sides,
    spread_bps=st.decimals(min_value=D("0"), max_value=D("100"), places=1),
    tick=st.sampled_from([D("0.00001"), D("0.001"), D("0.01"), D("0.1"), D("1")]),
)
def test_fill_price_is_on_the_tick_and_moves_against_the_taker(mark, side, spread_bps, tick):
    price = tm.fill_price(mark, side, spread_bps, tick)
    assert price % tick == 0
    target = mark * (1 + spread_bps / 10000) if side == tm.BUY else mark * (1 - spread_bps / 10000)
    if side == tm.BUY:
        assert target <= price < target + tick
        assert price >= mark
    else:
        assert target - tick < price <= target
        assert price <= mark


def test_fill_price_examples():
    assert tm.fill_price(D("100.05"), tm.BUY, D("0"), D("0.1")) == D("100.1")
    assert tm.fill_price(D("100.05"), tm.SELL, D("0"), D("0.1")) == D("100.0")
    assert tm.fill_price(D("60000"), tm.BUY, D("10"), D("0.1")) == D("60060.0")
    assert tm.fill_price(D("60000"), tm.SELL, D("10"), D("0.1")) == D("59940.0")


def test_pnl_and_average_entry():
    assert tm.pnl(tm.LONG, D("0.05"), D("60000"), D("61000")) == D("50")
    assert tm.pnl(tm.SHORT, D("0.05"), D("60000"), D("61000")) == D("-50")
    assert tm.average_entry(D("1"), D("100"), D("3"), D("200")) == D("175")
    assert tm.average_entry(D("0"), D("100"), D("0"), D("200")) == 0
