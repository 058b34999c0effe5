"""Spot limit orders, pure: placing, re-pricing and cancelling a follower's
mirror of a leader's spot limit (``spot_limit_event``), the mirror filling
with the leader's (``mirror_spot_limit_fill``), what it reserves
(``spot_limit_reserve``), the market sell capped at the free holding
(``spot_trade``), and how ``decisions.decide`` dispatches them."""

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import event as observe
from hypothesis import given
from hypothesis import strategies as st

from copytrading import decisions as d
from copytrading import sizing, trade_math
from copytrading.decisions import Decision, EventView, MirrorOrderView
from copytrading.decisions.spot import mirror_spot_limit_fill, spot_limit_event, spot_limit_reserve, spot_trade
from copytrading.money import q8_up
from copytrading.sizing import BELOW_MIN_NOTIONAL, BELOW_MIN_QUANTITY
from tests.copytrading.test_decisions import ACTIVE, CROSS_SPOT, MARGIN, PAUSED, SPOT
from tests.copytrading.test_sizing_properties import magnitudes

D = Decimal

# SPOT: qty_step 0.001, min_qty 0.001, max_qty 100, min_notional 5; fills at 3200 (buy) / 3199 (sell).
FIXED = replace(ACTIVE, sizing_model=sizing.SizingModel.FIXED, multiplier=None, fixed_notional=D("1000"))
NO_SPOT = replace(ACTIVE, copy_spot=False)

# The leader's limits rest away from the market: a buy below it, a sell above.
BUY_LIMIT = EventView(kind=d.LIMIT_PLACED, order_side="buy", price=D("3000"), quantity=D("2"))
SELL_LIMIT = EventView(kind=d.LIMIT_PLACED, order_side="sell", price=D("3300"), quantity=D("1"), fraction=D("0.5"))
BUY_REPRICE = replace(BUY_LIMIT, kind=d.LIMIT_REPRICED, price=D("3050"))
SELL_REPRICE = replace(SELL_LIMIT, kind=d.LIMIT_REPRICED, price=D("3400"))

# The follower's mirrors of them: the buy reserved 1 x 3000, the sell its 0.75.
OPEN_BUY = MirrorOrderView(status=d.ORDER_OPEN, quantity=D("1"), price=D("3000"), leverage=1, reserved=D("3000"))
OPEN_SELL = MirrorOrderView(status=d.ORDER_OPEN, quantity=D("0.75"), price=D("3300"), leverage=1, reserved=D("0.75"))

RICH = D("100000")
NOTHING = D("0")


def limit(event, target=ACTIVE, *, free=RICH, holding=NOTHING, reserved=NOTHING, order=None, market=SPOT):
    return spot_limit_event(
        event,
        target,
        free=free,
        equity=free,
        holding=holding,
        holding_reserved=reserved,
        order=order,
        market=market,
    )


def decide(event, target=ACTIVE, *, free=RICH, holding=NOTHING, reserved=NOTHING, order=None, market=SPOT):
    return d.decide(
        event,
        target,
        free=free,
        equity=free,
        mirror=None,
        holding=holding,
        market=market,
        holding_reserved=reserved,
        mirror_order=order,
    )


def placed(side, quantity, price, reserved):
    return Decision(d.COPIED, "", d.LIMIT_PLACE, side, D(quantity), D(price), 1, D(reserved), d.ORDER_OPEN)


PLACED_CASES = {
    # --- buys ---------------------------------------------------------------------
    "buy: progressive, at the limit price, reserving its cost": (
        {"event": BUY_LIMIT},
        placed("buy", "1", "3000", "3000"),
    ),
    "buy: the reservation is rounded up to 8 dp": (
        # 1.001 x 3100.123456789 = 3103.223580245789 → 3103.22358025
        {"event": replace(BUY_LIMIT, price=D("3100.123456789"), quantity=D("2.002"))},
        placed("buy", "1.001", "3100.123456789", "3103.22358025"),
    ),
    "buy: fixed notional sized at the limit price and floored to the step": (
        # 1000 / 3000 = 0.3333… → 0.333 (at the market's 3200 it would be 0.312)
        {"event": BUY_LIMIT, "target": FIXED},
        placed("buy", "0.333", "3000", "999"),
    ),
    "buy: exactly enough free": (
        {"event": BUY_LIMIT, "free": D("3000")},
        placed("buy", "1", "3000", "3000"),
    ),
    "buy: cost above free": (
        {"event": BUY_LIMIT, "free": D("2999.99999999")},
        Decision(d.REJECTED, d.INSUFFICIENT_FUNDS, quantity=D("1"), price=D("3000")),
    ),
    "buy: rounded-up cost above free": (
        {"event": replace(BUY_LIMIT, price=D("3100.123456789"), quantity=D("2.002")), "free": D("3103.22358024")},
        Decision(d.REJECTED, d.INSUFFICIENT_FUNDS, quantity=D("1.001"), price=D("3100.123456789")),
    ),
    "buy: paused follower": ({"event": BUY_LIMIT, "target": PAUSED}, Decision(d.SKIPPED, d.SUBSCRIPTION_PAUSED)),
    "buy: spot not copied": ({"event": BUY_LIMIT, "target": NO_SPOT}, Decision(d.SKIPPED, d.PRODUCT_NOT_COPIED)),
    "buy: pair quoted in another currency": (
        {"event": BUY_LIMIT, "market": CROSS_SPOT},
        Decision(d.SKIPPED, d.SPOT_PAIR_QUOTE_MISMATCH),
    ),
    "buy: the quote mismatch comes before the pause": (
        {"event": BUY_LIMIT, "market": CROSS_SPOT, "target": PAUSED},
        Decision(d.SKIPPED, d.SPOT_PAIR_QUOTE_MISMATCH),
    ),
    "buy: below min quantity": (
        # 2 x 0.0002 = 0.0004 < 0.001
        {"event": BUY_LIMIT, "target": replace(ACTIVE, multiplier=D("0.0002"))},
        Decision(d.SKIPPED, BELOW_MIN_QUANTITY),
    ),
    "buy: below min notional at the limit price": (
        # 1 x 3000 < 3100 (at the market's 3200 it would pass)
        {"event": BUY_LIMIT, "market": replace(SPOT, constraints=replace(SPOT.constraints, min_notional=D("3100")))},
        Decision(d.SKIPPED, BELOW_MIN_NOTIONAL),
    ),
    # --- sells --------------------------------------------------------------------
    "sell: the leader's fraction of the holding, reserving the quantity": (
        {"event": SELL_LIMIT, "holding": D("1.5")},
        placed("sell", "0.75", "3300", "0.75"),
    ),
    "sell: floored to the step": (
        # 0.12345 x 0.5 = 0.061725 → 0.061
        {"event": SELL_LIMIT, "holding": D("0.12345")},
        placed("sell", "0.061", "3300", "0.061"),
    ),
    "sell: the fraction of the whole holding, within the free part": (
        # 1.5 x 0.3 = 0.45 ≤ free 0.5: not the fraction of the free part (0.15)
        {"event": replace(SELL_LIMIT, fraction=D("0.3")), "holding": D("1.5"), "reserved": D("1")},
        placed("sell", "0.45", "3300", "0.45"),
    ),
    "sell: capped at the free part": (
        # 1.5 x 0.5 = 0.75, but 1 of the 1.5 is held by a resting sell
        {"event": SELL_LIMIT, "holding": D("1.5"), "reserved": D("1")},
        placed("sell", "0.5", "3300", "0.5"),
    ),
    "sell: a fraction of 1 sells all of the free part": (
        {"event": replace(SELL_LIMIT, fraction=D("1")), "holding": D("1.5"), "reserved": D("0.4")},
        placed("sell", "1.1", "3300", "1.1"),
    ),
    "sell: a fraction above 1 sells all of the free part": (
        {"event": replace(SELL_LIMIT, fraction=D("1.5")), "holding": D("1.5"), "reserved": D("0.4")},
        placed("sell", "1.1", "3300", "1.1"),
    ),
    "sell: a fraction of 1 of an unreserved holding sells all of it": (
        {"event": replace(SELL_LIMIT, fraction=D("1")), "holding": D("0.12345")},
        placed("sell", "0.12345", "3300", "0.12345"),
    ),
    "sell: no holding": ({"event": SELL_LIMIT}, Decision(d.SKIPPED, d.NO_HOLDING_TO_SELL)),
    "sell: all of the holding already reserved": (
        {"event": SELL_LIMIT, "holding": D("1.5"), "reserved": D("1.5")},
        Decision(d.SKIPPED, BELOW_MIN_QUANTITY),
    ),
    "sell: all of it reserved, even for a fraction of 1": (
        {"event": replace(SELL_LIMIT, fraction=D("1")), "holding": D("1.5"), "reserved": D("1.5")},
        Decision(d.SKIPPED, BELOW_MIN_QUANTITY),
    ),
    "sell: the fraction rounds to nothing": (
        # 0.001 x 0.5 = 0.0005 → 0
        {"event": SELL_LIMIT, "holding": D("0.001")},
        Decision(d.SKIPPED, BELOW_MIN_QUANTITY),
    ),
    "sell: a paused follower still gets it": (
        {"event": SELL_LIMIT, "target": PAUSED, "holding": D("1.5")},
        placed("sell", "0.75", "3300", "0.75"),
    ),
    "sell: spot not copied still gets it, as market sells do": (
        {"event": SELL_LIMIT, "target": NO_SPOT, "holding": D("1.5")},
        placed("sell", "0.75", "3300", "0.75"),
    ),
    "sell: needs no free quote": (
        {"event": SELL_LIMIT, "holding": D("1.5"), "free": D("0")},
        placed("sell", "0.75", "3300", "0.75"),
    ),
    "sell: pair quoted in another currency": (
        {"event": SELL_LIMIT, "market": CROSS_SPOT, "holding": D("1.5")},
        Decision(d.SKIPPED, d.SPOT_PAIR_QUOTE_MISMATCH),
    ),
}


@pytest.mark.parametrize(("kwargs", "expected"), PLACED_CASES.values(), ids=PLACED_CASES.keys())
def test_limit_placed(kwargs, expected):
    assert limit(**kwargs) == expected
    # decide sends a spot limit to spot_limit_event, unchanged.
    assert decide(**kwargs) == expected


REPRICE_CANCEL_CASES = {
    "buy re-priced up re-reserves at the new price": (
        {"event": BUY_REPRICE, "order": OPEN_BUY},
        Decision(d.COPIED, "", d.LIMIT_REPRICE, "buy", D("1"), D("3050"), 1, D("3050")),
    ),
    "buy re-priced up with exactly the extra free": (
        {"event": BUY_REPRICE, "order": OPEN_BUY, "free": D("50")},
        Decision(d.COPIED, "", d.LIMIT_REPRICE, "buy", D("1"), D("3050"), 1, D("3050")),
    ),
    "buy re-priced, reservation rounded up to 8 dp": (
        # 1 x 3050.000000001 → 3050.00000001
        {"event": replace(BUY_REPRICE, price=D("3050.000000001")), "order": OPEN_BUY},
        Decision(d.COPIED, "", d.LIMIT_REPRICE, "buy", D("1"), D("3050.000000001"), 1, D("3050.00000001")),
    ),
    "buy re-priced up without the extra: cancelled": (
        {"event": BUY_REPRICE, "order": OPEN_BUY, "free": D("49.99999999")},
        Decision(
            d.REJECTED,
            d.INSUFFICIENT_FUNDS,
            d.LIMIT_CANCEL,
            "buy",
            D("1"),
            D("3050"),
            1,
            order_status=d.ORDER_CANCELLED,
        ),
    ),
    "buy re-priced down releases, needing nothing free": (
        {"event": replace(BUY_REPRICE, price=D("2900")), "order": OPEN_BUY, "free": D("0")},
        Decision(d.COPIED, "", d.LIMIT_REPRICE, "buy", D("1"), D("2900"), 1, D("2900")),
    ),
    "buy re-priced for a paused follower still follows": (
        {"event": BUY_REPRICE, "order": OPEN_BUY, "target": PAUSED},
        Decision(d.COPIED, "", d.LIMIT_REPRICE, "buy", D("1"), D("3050"), 1, D("3050")),
    ),
    "sell re-priced keeps its quantity reserved": (
        {"event": SELL_REPRICE, "order": OPEN_SELL, "free": D("0")},
        Decision(d.COPIED, "", d.LIMIT_REPRICE, "sell", D("0.75"), D("3400"), 1, D("0.75")),
    ),
    "re-price without a mirror order": ({"event": BUY_REPRICE}, Decision(d.SKIPPED, d.NO_MIRROR_ORDER)),
    "re-price of a filled mirror": (
        {"event": BUY_REPRICE, "order": replace(OPEN_BUY, status=d.ORDER_FILLED)},
        Decision(d.SKIPPED, d.NO_MIRROR_ORDER),
    ),
    "re-price of a cancelled mirror": (
        {"event": SELL_REPRICE, "order": replace(OPEN_SELL, status=d.ORDER_CANCELLED)},
        Decision(d.SKIPPED, d.NO_MIRROR_ORDER),
    ),
    "cancel a buy": (
        {"event": replace(BUY_LIMIT, kind=d.LIMIT_CANCELLED), "order": OPEN_BUY},
        Decision(d.COPIED, "", d.LIMIT_CANCEL, "buy", D("1"), D("3000"), 1, order_status=d.ORDER_CANCELLED),
    ),
    "cancel a sell for a paused follower": (
        {"event": replace(SELL_LIMIT, kind=d.LIMIT_CANCELLED), "order": OPEN_SELL, "target": PAUSED},
        Decision(d.COPIED, "", d.LIMIT_CANCEL, "sell", D("0.75"), D("3300"), 1, order_status=d.ORDER_CANCELLED),
    ),
    "cancel without a mirror order": (
        {"event": replace(BUY_LIMIT, kind=d.LIMIT_CANCELLED)},
        Decision(d.SKIPPED, d.NO_MIRROR_ORDER),
    ),
    "cancel of a rejected mirror": (
        {"event": replace(BUY_LIMIT, kind=d.LIMIT_CANCELLED), "order": replace(OPEN_BUY, status=d.ORDER_REJECTED)},
        Decision(d.SKIPPED, d.NO_MIRROR_ORDER),
    ),
}


@pytest.mark.parametrize(("kwargs", "expected"), REPRICE_CANCEL_CASES.values(), ids=REPRICE_CANCEL_CASES.keys())
def test_limit_repriced_and_cancelled(kwargs, expected):
    assert limit(**kwargs) == expected
    assert decide(**kwargs) == expected


def test_spot_limit_reserve_is_a_buys_cost_rounded_up_and_a_sells_quantity():
    assert spot_limit_reserve(D("1.001"), D("3100.123456789"), trade_math.BUY) == D("3103.22358025")
    assert spot_limit_reserve(D("0.333"), D("3000"), trade_math.BUY) == D("999")
    assert spot_limit_reserve(D("0.75"), D("3300"), trade_math.SELL) == D("0.75")


# --- a leader's spot limit fills ------------------------------------------------------

BUY_FILL = EventView(
    kind=d.SPOT_BUY,
    order_side="buy",
    price=D("3200"),
    quantity=D("2"),
    limit_order_id=7,
    order_quantity=D("2"),
    limit_final=True,
)
SELL_FILL = EventView(
    kind=d.SPOT_SELL,
    order_side="sell",
    price=D("3199"),
    fraction=D("0.5"),
    limit_order_id=8,
    order_quantity=D("1"),
    limit_final=True,
)

FILL_CASES = {
    "buy: the mirror already filled": (
        {"event": BUY_FILL, "order": replace(OPEN_BUY, status=d.ORDER_FILLED)},
        Decision(d.SKIPPED, d.MIRROR_LIMIT_FILLED),
    ),
    "sell: the mirror already filled": (
        {"event": SELL_FILL, "order": replace(OPEN_SELL, status=d.ORDER_FILLED), "holding": D("1.5")},
        Decision(d.SKIPPED, d.MIRROR_LIMIT_FILLED),
    ),
    "buy: a resting mirror fills whole at its own price": (
        # its cost was reserved: nothing needs to be free
        {"event": BUY_FILL, "order": OPEN_BUY, "free": D("0")},
        Decision(d.COPIED, "", "spot_buy", "buy", D("1"), D("3000"), 1, order_status=d.ORDER_FILLED),
    ),
    "buy: a resting mirror of a paused follower fills too": (
        {"event": BUY_FILL, "order": OPEN_BUY, "target": PAUSED},
        Decision(d.COPIED, "", "spot_buy", "buy", D("1"), D("3000"), 1, order_status=d.ORDER_FILLED),
    ),
    "sell: a resting mirror fills whole at its own price": (
        {"event": SELL_FILL, "order": OPEN_SELL, "holding": D("1.5"), "reserved": D("0.75")},
        Decision(d.COPIED, "", "spot_sell", "sell", D("0.75"), D("3300"), 1, order_status=d.ORDER_FILLED),
    ),
    "sell: a resting mirror of exactly the holding": (
        {"event": SELL_FILL, "order": OPEN_SELL, "holding": D("0.75"), "reserved": D("0.75")},
        Decision(d.COPIED, "", "spot_sell", "sell", D("0.75"), D("3300"), 1, order_status=d.ORDER_FILLED),
    ),
    "sell: a resting mirror larger than the holding is cancelled": (
        {"event": SELL_FILL, "order": OPEN_SELL, "holding": D("0.7")},
        Decision(d.SKIPPED, d.NO_HOLDING_TO_SELL, order_status=d.ORDER_CANCELLED),
    ),
    "buy: no mirror order copies like a market buy": (
        {"event": BUY_FILL},
        Decision(d.COPIED, "", "spot_buy", "buy", D("1"), D("3200"), 1),
    ),
    "sell: no mirror order copies like a market sell": (
        {"event": SELL_FILL, "holding": D("1.5")},
        Decision(d.COPIED, "", "spot_sell", "sell", D("0.75"), D("3199"), 1),
    ),
    "sell: no mirror order, a market sell capped at the free part": (
        {"event": SELL_FILL, "holding": D("1.5"), "reserved": D("1")},
        Decision(d.COPIED, "", "spot_sell", "sell", D("0.5"), D("3199"), 1),
    ),
    "buy: a cancelled mirror copies like a market buy": (
        {"event": BUY_FILL, "order": replace(OPEN_BUY, status=d.ORDER_CANCELLED)},
        Decision(d.COPIED, "", "spot_buy", "buy", D("1"), D("3200"), 1),
    ),
    "buy: without a mirror, the market slippage check applies": (
        # the leader's limit filled at 3000, the follower's market buy would pay 3200
        {"event": replace(BUY_FILL, price=D("3000"))},
        Decision(d.REJECTED, d.SLIPPAGE_EXCEEDED, quantity=D("1"), price=D("3200")),
    ),
    "buy: a market buy (no limit order) ignores a filled mirror order": (
        {"event": replace(BUY_FILL, limit_order_id=None), "order": replace(OPEN_BUY, status=d.ORDER_FILLED)},
        Decision(d.COPIED, "", "spot_buy", "buy", D("1"), D("3200"), 1),
    ),
}


@pytest.mark.parametrize(("kwargs", "expected"), FILL_CASES.values(), ids=FILL_CASES.keys())
def test_a_leaders_spot_limit_fill_through_decide(kwargs, expected):
    assert decide(**kwargs) == expected


def test_mirror_spot_limit_fill_directly():
    assert mirror_spot_limit_fill(BUY_FILL, holding=D("0"), order=OPEN_BUY) == Decision(
        d.COPIED, "", "spot_buy", "buy", D("1"), D("3000"), 1, order_status=d.ORDER_FILLED
    )
    assert mirror_spot_limit_fill(SELL_FILL, holding=D("0.74999999"), order=OPEN_SELL) == Decision(
        d.SKIPPED, d.NO_HOLDING_TO_SELL, order_status=d.ORDER_CANCELLED
    )


def test_a_margin_limit_still_goes_to_the_margin_path():
    event = EventView(kind=d.LIMIT_PLACED, order_side="buy", price=D("60000"), quantity=D("0.1"), leverage=10)
    # 0.05 x 60000 / 10 = 300 of margin, at the leader's leverage
    assert decide(event, market=MARGIN) == Decision(
        d.COPIED, "", d.LIMIT_PLACE, "buy", D("0.05"), D("60000"), 10, D("300"), d.ORDER_OPEN
    )
    # A margin limit sell opens a short: a paused follower does not get it (a spot sell it would).
    sell = replace(event, order_side="sell", fraction=D("0.5"))
    assert decide(sell, PAUSED, market=MARGIN, holding=D("1.5")) == Decision(d.SKIPPED, d.SUBSCRIPTION_PAUSED)
    assert decide(sell, PAUSED, market=SPOT, holding=D("1.5")) == placed("sell", "0.75", "60000", "0.75")
    # Re-pricing a margin mirror keeps its leverage and reserves margin, not the cost.
    order = MirrorOrderView(status=d.ORDER_OPEN, quantity=D("0.05"), price=D("60000"), leverage=10, reserved=D("300"))
    assert decide(replace(event, kind=d.LIMIT_REPRICED, price=D("61000")), market=MARGIN, order=order) == Decision(
        d.COPIED, "", d.LIMIT_REPRICE, "buy", D("0.05"), D("61000"), 10, D("305")
    )


# --- the market sell capped at the free holding ---------------------------------------

MARKET_SELL = EventView(kind=d.SPOT_SELL, order_side="sell", price=D("3199"), fraction=D("0.5"))


@pytest.mark.parametrize(
    ("fraction", "holding", "reserved", "expected"),
    [
        (D("0.5"), D("1.5"), D("0"), Decision(d.COPIED, "", "spot_sell", "sell", D("0.75"), D("3199"), 1)),
        (D("0.5"), D("1.5"), D("1"), Decision(d.COPIED, "", "spot_sell", "sell", D("0.5"), D("3199"), 1)),
        (D("0.3"), D("1.5"), D("1"), Decision(d.COPIED, "", "spot_sell", "sell", D("0.45"), D("3199"), 1)),
        (D("1"), D("1.5"), D("0.4"), Decision(d.COPIED, "", "spot_sell", "sell", D("1.1"), D("3199"), 1)),
        (D("0.5"), D("1.5"), D("1.5"), Decision(d.SKIPPED, BELOW_MIN_QUANTITY)),
        (D("0.5"), D("0"), D("0"), Decision(d.SKIPPED, d.NO_HOLDING_TO_SELL)),
    ],
    ids=["unreserved", "capped", "within the free part", "all of the free part", "all reserved", "no holding"],
)
def test_spot_trade_market_sell_is_capped_at_the_free_holding(fraction, holding, reserved, expected):
    event = replace(MARKET_SELL, fraction=fraction)
    got = spot_trade(
        event,
        ACTIVE,
        price=SPOT.fill_price_sell,
        free=RICH,
        equity=RICH,
        holding=holding,
        market=SPOT,
        holding_reserved=reserved,
    )
    assert got == expected
    assert decide(event, holding=holding, reserved=reserved) == expected


def test_spot_trade_holding_reserved_defaults_to_nothing():
    got = spot_trade(MARKET_SELL, ACTIVE, price=D("3199"), free=RICH, equity=RICH, holding=D("1.5"), market=SPOT)
    assert got == Decision(d.COPIED, "", "spot_sell", "sell", D("0.75"), D("3199"), 1)


# --- properties -----------------------------------------------------------------------

steps = st.sampled_from([D("0.00001"), D("0.001"), D("0.01"), D("0.1"), D("1")])
amounts = st.decimals(min_value=D("0"), max_value=D("1000"), places=5)
fractions = st.sampled_from([D("1"), D("0.5"), D("0.3"), D("0.9999"), D("1.5")]) | st.builds(
    lambda n: D(n) / 10000, st.integers(min_value=1, max_value=10000)
)


def _market(step: Decimal):
    return replace(SPOT, constraints=replace(SPOT.constraints, qty_step=step, min_qty=step))


@given(
    step=steps,
    holding_units=st.integers(min_value=0, max_value=10**6),
    reserved_share=st.integers(min_value=0, max_value=100),
    fraction=fractions,
    paused=st.booleans(),
)
def test_a_placed_spot_limit_sell_never_exceeds_the_free_holding_and_is_on_the_step(
    step, holding_units, reserved_share, fraction, paused
):
    # Holdings and reservations on the step, as buys and placed sells leave them.
    holding = holding_units * step
    reserved = (holding_units * reserved_share // 100) * step
    free_holding = holding - reserved
    event = replace(SELL_LIMIT, fraction=fraction)
    decision = limit(event, PAUSED if paused else ACTIVE, holding=holding, reserved=reserved, market=_market(step))
    observe(f"{decision.outcome} {decision.reason}")
    if decision.outcome == d.SKIPPED:
        if holding <= 0:
            assert decision.reason == d.NO_HOLDING_TO_SELL
        else:
            assert decision.reason == BELOW_MIN_QUANTITY
            assert free_holding == 0 or holding * fraction < step
        return
    assert decision.outcome == d.COPIED
    assert (decision.action, decision.order_side, decision.order_status) == (d.LIMIT_PLACE, "sell", d.ORDER_OPEN)
    assert 0 < decision.quantity <= free_holding
    assert decision.quantity % step == 0
    assert decision.reserved == decision.quantity
    if fraction >= 1:
        assert decision.quantity == free_holding
    else:
        assert decision.quantity == min(free_holding, (holding * fraction // step) * step)


@given(
    step=steps,
    holding=amounts,
    reserved_share=st.sampled_from([D("0"), D("1"), D("1.01")]) | st.decimals(D("0"), D("1"), places=4),
    fraction=fractions,
)
def test_a_placed_spot_limit_sell_never_exceeds_the_free_holding_whatever_the_holding(
    step, holding, reserved_share, fraction
):
    # Any holding and reservation, on the step or not (even more reserved than held).
    reserved = (holding * reserved_share).quantize(D("0.00001"))
    decision = limit(replace(SELL_LIMIT, fraction=fraction), holding=holding, reserved=reserved, market=_market(step))
    observe(f"{decision.outcome} {decision.reason}")
    if decision.outcome == d.COPIED:
        assert 0 < decision.quantity <= holding - reserved
        # On the step, unless it is the whole free part (as a sell of everything is).
        assert decision.quantity % step == 0 or decision.quantity == holding - reserved
    else:
        assert decision.reason in (d.NO_HOLDING_TO_SELL, BELOW_MIN_QUANTITY)


prices = magnitudes(-1, 5)  # 0.1 .. 1e5, with up to 3 + 3 decimals


@given(
    step=steps,
    price=prices,
    leader_quantity=magnitudes(-4, 3),
    multiplier=st.decimals(min_value=D("0.0001"), max_value=D("1"), places=4),
    free=magnitudes(1, 6),
)
def test_a_placed_spot_limit_buy_never_reserves_more_than_is_free(step, price, leader_quantity, multiplier, free):
    market = _market(step)
    target = replace(ACTIVE, multiplier=multiplier)
    decision = limit(replace(BUY_LIMIT, price=price, quantity=leader_quantity), target, free=free, market=market)
    observe(f"{decision.outcome} {decision.reason}")
    if decision.outcome == d.COPIED:
        assert (decision.action, decision.price, decision.order_status) == (d.LIMIT_PLACE, price, d.ORDER_OPEN)
        assert decision.quantity % step == 0
        assert decision.reserved == q8_up(decision.quantity * price)
        assert decision.reserved <= free
    elif decision.outcome == d.REJECTED:
        assert decision.reason == d.INSUFFICIENT_FUNDS
        assert q8_up(decision.quantity * price) > free
    else:
        assert decision.reason in (BELOW_MIN_QUANTITY, BELOW_MIN_NOTIONAL)


@given(
    price=prices,
    new_price=prices,
    quantity=st.decimals(min_value=D("0.001"), max_value=D("100"), places=3),
    free=st.just(D("0")) | magnitudes(-2, 6),
)
def test_a_repriced_spot_limit_buy_never_reserves_more_than_it_held_plus_free(price, new_price, quantity, free):
    order = MirrorOrderView(d.ORDER_OPEN, quantity, price, 1, q8_up(quantity * price))
    decision = limit(replace(BUY_REPRICE, price=new_price), free=free, order=order)
    observe(decision.outcome)
    needed = q8_up(quantity * new_price)
    if decision.outcome == d.COPIED:
        assert (decision.action, decision.quantity, decision.reserved) == (d.LIMIT_REPRICE, quantity, needed)
        assert decision.reserved - order.reserved <= free
    else:
        assert (decision.outcome, decision.reason, decision.action) == (
            d.REJECTED,
            d.INSUFFICIENT_FUNDS,
            d.LIMIT_CANCEL,
        )
        assert decision.order_status == d.ORDER_CANCELLED
        assert needed - order.reserved > free
