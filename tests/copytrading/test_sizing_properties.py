"""Sizing through ``decisions.decide`` (pure, hypothesis): whatever the model,
the leader's trade and the follower's wallet, a COPIED open is within the
instrument's maximum, on the quantity step, at or under the instrument's
maximum leverage, and never needs more margin (or spot cash) than is free;
anything else is REJECTED INSUFFICIENT_MARGIN/FUNDS or SKIPPED below the
minimum, with a reason."""

import math
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

from hypothesis import event as observe
from hypothesis import given
from hypothesis import strategies as st

from copytrading import decisions, sizing, trade_math
from copytrading.decisions import (
    COPIED,
    INSUFFICIENT_FUNDS,
    INSUFFICIENT_MARGIN,
    LIMIT_PLACE,
    LIMIT_PLACED,
    POSITION_OPEN,
    REJECTED,
    SKIPPED,
    SPOT_BUY,
    EventView,
    MarketView,
    MirrorView,
    Share,
    TargetView,
)
from copytrading.money import q8_up

D = Decimal
BELOW_MIN = (sizing.BELOW_MIN_QUANTITY, sizing.BELOW_MIN_NOTIONAL)

steps = st.sampled_from([D("0.00001"), D("0.001"), D("0.01"), D("0.1"), D("1")])


def magnitudes(low: int, high: int) -> st.SearchStrategy[Decimal]:
    """Positive decimals spread evenly over the orders of magnitude 10**low .. 10**high
    (uniform draws would almost never be small enough, or large enough, to
    reach every branch)."""
    return st.builds(
        lambda mantissa, exponent: D(mantissa).scaleb(exponent - 3),
        st.sampled_from(range(1000, 10000)),
        st.sampled_from(range(low, high + 1)),
    )


prices = magnitudes(-1, 5)
leader_quantities = magnitudes(-4, 3)
money = magnitudes(1, 6)


@st.composite
def markets(draw, *, quote: str = "USDT") -> MarketView:
    step = draw(steps)
    min_qty = step * draw(st.integers(min_value=1, max_value=20))
    max_qty = min_qty * draw(st.integers(min_value=1, max_value=5000))
    constraints = sizing.Constraints(
        qty_step=step,
        min_qty=min_qty,
        max_qty=max_qty,
        min_notional=draw(st.decimals(min_value=D("0"), max_value=D("50"), places=2)),
    )
    price = draw(prices).quantize(D("0.01")) or D("0.01")
    return MarketView(
        product="X",
        quote=quote,
        primary_currency="USDT",
        fill_price_buy=price,
        fill_price_sell=price,
        max_leverage=draw(st.integers(min_value=1, max_value=125)),
        constraints=constraints,
    )


@st.composite
def targets(draw) -> TargetView:
    model = draw(st.sampled_from(sizing.SizingModel.ALL))
    return TargetView(
        subscription_id=1,
        account_id=1,
        active=True,
        sizing_model=model,
        multiplier=draw(st.decimals(min_value=D("0.0001"), max_value=D("1"), places=4)),
        fixed_notional=draw(magnitudes(0, 5)),
        risk_factor=draw(st.decimals(min_value=D("0"), max_value=D("3"), places=4)),
        leverage_override=draw(st.none() | st.integers(min_value=1, max_value=125)),
    )


def _event(kind: str, market: MarketView, quantity: Decimal, leverage: int, leader_equity: Decimal) -> EventView:
    # The leader's price is the follower's fill: no slippage rejection in these properties.
    return EventView(
        kind=kind,
        order_side=trade_math.BUY,
        price=market.fill_price_buy,
        quantity=quantity,
        leverage=leverage,
        leader_equity=leader_equity,
    )


def _assert_sized(decision, market: MarketView) -> None:
    c = market.constraints
    assert decision.quantity <= c.max_qty
    assert decision.quantity >= c.min_qty
    assert decision.quantity % c.qty_step == 0
    assert decision.quantity * decision.price >= c.min_notional


@given(
    market=markets(),
    target=targets(),
    quantity=leader_quantities,
    leverage=st.integers(min_value=1, max_value=125),
    free=money,
    equity=money,
    leader_equity=money,
    increase=st.booleans(),
)
def test_a_copied_margin_open_fits_the_instrument_and_the_free_margin(
    market, target, quantity, leverage, free, equity, leader_equity, increase
):
    mirror = MirrorView(side="long", quantity=market.constraints.min_qty, leverage=3) if increase else None
    event = _event(POSITION_OPEN, market, quantity, leverage, leader_equity)
    decision = decisions.decide(event, target, free=free, equity=equity, mirror=mirror, holding=D("0"), market=market)
    observe(f"{decision.outcome} {decision.reason}")  # --hypothesis-show-statistics: every branch is reached
    expected_leverage = 3 if increase else min(target.leverage_override or leverage, market.max_leverage)
    if decision.outcome == COPIED:
        assert decision.action == (trade_math.INCREASE if increase else trade_math.OPEN)
        _assert_sized(decision, market)
        assert decision.leverage == expected_leverage
        assert decision.leverage <= max(market.max_leverage, 3 if increase else 1)
        assert trade_math.margin_for(decision.quantity, decision.price, decision.leverage) <= free
    elif decision.outcome == REJECTED:
        assert decision.reason == INSUFFICIENT_MARGIN
        _assert_sized(decision, market)
        assert trade_math.margin_for(decision.quantity, decision.price, decision.leverage) > free
    else:
        assert (decision.outcome, decision.quantity) == (SKIPPED, D("0"))
        assert decision.reason in BELOW_MIN


@given(
    market=markets(),
    target=targets(),
    quantity=leader_quantities,
    leverage=st.integers(min_value=1, max_value=125),
    free=money,
    equity=money,
    leader_equity=money,
)
def test_a_placed_mirror_limit_reserves_no_more_than_is_free(
    market, target, quantity, leverage, free, equity, leader_equity
):
    event = _event(LIMIT_PLACED, market, quantity, leverage, leader_equity)
    decision = decisions.decide(event, target, free=free, equity=equity, mirror=None, holding=D("0"), market=market)
    observe(f"{decision.outcome} {decision.reason}")
    if decision.outcome == COPIED:
        assert decision.action == LIMIT_PLACE
        _assert_sized(decision, market)
        assert decision.leverage == min(target.leverage_override or leverage, market.max_leverage)
        assert decision.reserved == trade_math.margin_for(decision.quantity, decision.price, decision.leverage)
        assert decision.reserved <= free
    elif decision.outcome == REJECTED:
        assert decision.reason == INSUFFICIENT_MARGIN
        assert trade_math.margin_for(decision.quantity, decision.price, decision.leverage) > free
    else:
        assert decision.reason in BELOW_MIN


@given(market=markets(), target=targets(), quantity=leader_quantities, free=money, equity=money, leader_equity=money)
def test_a_copied_spot_buy_never_costs_more_than_is_free(market, target, quantity, free, equity, leader_equity):
    event = _event(SPOT_BUY, market, quantity, 1, leader_equity)
    decision = decisions.decide(event, target, free=free, equity=equity, mirror=None, holding=D("0"), market=market)
    observe(f"{decision.outcome} {decision.reason}")
    if decision.outcome == COPIED:
        _assert_sized(decision, market)
        assert q8_up(decision.quantity * decision.price) <= free
    elif decision.outcome == REJECTED:
        assert decision.reason == INSUFFICIENT_FUNDS
        assert q8_up(decision.quantity * decision.price) > free
    else:
        assert decision.reason in BELOW_MIN


@given(
    market=markets(),
    target=targets(),
    quantity=leader_quantities,
    leverage=st.integers(min_value=1, max_value=125),
    equity=money,
    leader_equity=money,
)
def test_the_margin_check_is_exactly_at_the_boundary(market, target, quantity, leverage, equity, leader_equity):
    """With exactly the margin the copy needs free it is COPIED; one unit less, REJECTED."""
    event = _event(POSITION_OPEN, market, quantity, leverage, leader_equity)
    rich = decisions.decide(event, target, free=D("1e12"), equity=equity, mirror=None, holding=D("0"), market=market)
    observe(rich.outcome)
    if rich.outcome != COPIED:
        assert rich.reason in BELOW_MIN
        return
    needed = trade_math.margin_for(rich.quantity, rich.price, rich.leverage)
    exact = decisions.decide(event, target, free=needed, equity=equity, mirror=None, holding=D("0"), market=market)
    short = decisions.decide(
        event, target, free=needed - D("0.00000001"), equity=equity, mirror=None, holding=D("0"), market=market
    )
    assert (exact.outcome, exact.quantity, exact.leverage) == (COPIED, rich.quantity, rich.leverage)
    assert (short.outcome, short.reason, short.quantity) == (REJECTED, INSUFFICIENT_MARGIN, rich.quantity)


@st.composite
def mirrors(draw) -> tuple[sizing.Constraints, Decimal]:
    step = draw(steps)
    min_qty = step * draw(st.integers(min_value=1, max_value=20))
    c = sizing.Constraints(qty_step=step, min_qty=min_qty, max_qty=min_qty * 100_000, min_notional=D("0"))
    return c, min_qty + step * draw(st.sampled_from(range(0, 100)) | st.sampled_from(range(0, 1_000_000)))


@st.composite
def leader_reduces(draw) -> tuple[EventView, Fraction]:
    """A leader's reduce and its exact share. New events carry the leader's
    quantity and its position before; events recorded before those existed
    carry only the fraction, a quotient rounded to 28 digits (still sized)."""
    scale = draw(st.sampled_from([D("0.00001"), D("0.001"), D("0.01"), D("1")]))
    before_units = draw(st.integers(min_value=1, max_value=10**6))
    units = draw(st.integers(min_value=1, max_value=before_units) | st.just(before_units))
    quantity, before = units * scale, before_units * scale
    base = EventView(kind=decisions.POSITION_REDUCE, order_side=trade_math.SELL, price=D("100"))
    if draw(st.booleans()):
        return replace(base, quantity=quantity, quantity_before=before, fraction=quantity / before), Fraction(
            units, before_units
        )
    fraction = quantity / before
    return replace(base, fraction=fraction), Fraction(fraction)


def _reduce(event: EventView, held: Decimal, c: sizing.Constraints):
    market = MarketView("X", "USDT", "USDT", D("100"), D("100"), 10, c)
    target = TargetView(subscription_id=1, account_id=1, active=True, sizing_model=sizing.SizingModel.PROGRESSIVE)
    return decisions.decide(
        event,
        target,
        free=D("0"),
        equity=D("0"),
        mirror=MirrorView(side="long", quantity=held, leverage=5),
        holding=D("0"),
        market=market,
    )


@given(mirror=mirrors(), reduce=leader_reduces())
def test_a_copied_reduce_is_the_exact_share_floored_on_the_closing_side_and_never_exceeds_the_mirror(mirror, reduce):
    c, held = mirror
    event, share = reduce
    decision = _reduce(event, held, c)
    # The exact share of the mirror rounded down to the step, computed with
    # rationals: no quotient is rounded before the floor.
    floored = math.floor(Fraction(held) * share / Fraction(c.qty_step)) * c.qty_step
    observe(f"{decision.outcome} {decision.action} {'exact' if event.quantity_before else 'old payload'}")
    if decision.outcome == SKIPPED:
        # Only when the share of the mirror rounds down to nothing.
        assert decision.reason == sizing.BELOW_MIN_QUANTITY
        assert floored == 0 and share < 1
        return
    assert decision.outcome == COPIED
    assert (decision.order_side, decision.leverage) == (trade_math.SELL, 5)
    assert 0 < decision.quantity <= held  # never more than the mirror holds
    if decision.action == trade_math.CLOSE:
        # All of it: the leader closed everything, or the rest would be below the minimum.
        assert decision.quantity == held
        assert share >= 1 or held - floored < c.min_qty
    else:
        assert decision.action == trade_math.REDUCE
        assert decision.quantity == floored
        assert held - decision.quantity >= c.min_qty


@given(mirror=mirrors(), data=st.data())
def test_a_mirror_the_size_of_the_leaders_position_reduces_by_exactly_the_leaders_quantity(mirror, data):
    """Progressive 1.0: the mirror holds what the leader holds, on the step;
    whatever the leader reduces (on the step), the mirror reduces the same."""
    c, held = mirror
    units = data.draw(st.integers(min_value=1, max_value=int(held / c.qty_step)))
    quantity = units * c.qty_step
    event = EventView(
        kind=decisions.POSITION_REDUCE, order_side=trade_math.SELL, price=D("100"), quantity=quantity,
        quantity_before=held, fraction=quantity / held,
    )  # fmt: skip
    decision = _reduce(event, held, c)
    if quantity == held or held - quantity < c.min_qty:
        assert (decision.action, decision.quantity) == (trade_math.CLOSE, held)
    else:
        assert (decision.action, decision.quantity) == (trade_math.REDUCE, quantity)


@given(mirror=mirrors())
def test_thirty_then_fifty_percent_leaves_at_least_35_percent_within_two_steps(mirror):
    c, held = mirror
    left = held
    # 30 % of the position, then 50 % of the rest, as the leader's quantities.
    for share in (Share(D("3"), D("10")), Share(D("3.5"), D("7"))):
        planned = decisions.rules.reduce_by(left, share, c)
        if planned is None:
            continue
        action, quantity = planned
        left = D("0") if action == trade_math.CLOSE else left - quantity
    if left:
        assert held * D("0.35") <= left < held * D("0.35") + 2 * c.qty_step
        assert left >= c.min_qty
