"""What one follower gets for one leader event: decisions.decide, table-driven (pure)."""

from dataclasses import replace
from decimal import Decimal

import pytest

from copytrading import decisions as d
from copytrading.decisions import Decision, EventView, MarketView, MirrorView, TargetView
from copytrading.sizing import BELOW_MIN_NOTIONAL, BELOW_MIN_QUANTITY, Constraints

D = Decimal

MARGIN = MarketView(
    product="margin",
    quote="USDT",
    primary_currency="USDT",
    fill_price_buy=D("60000"),
    fill_price_sell=D("59990"),
    max_leverage=20,
    constraints=Constraints(qty_step=D("0.001"), min_qty=D("0.001"), max_qty=D("100"), min_notional=D("5")),
)
SPOT = replace(MARGIN, product="spot", max_leverage=1, fill_price_buy=D("3200"), fill_price_sell=D("3199"))
CROSS_SPOT = replace(SPOT, quote="BTC")

OPEN = EventView(kind=d.POSITION_OPEN, order_side="buy", price=D("60000"), quantity=D("0.1"), leverage=10)
REDUCE = EventView(kind=d.POSITION_REDUCE, order_side="sell", price=D("59990"), fraction=D("0.3"))
CLOSE = EventView(kind=d.POSITION_CLOSE, order_side="sell", price=D("59990"))
SPOT_BUY = EventView(kind=d.SPOT_BUY, order_side="buy", price=D("3200"), quantity=D("2"))
SPOT_SELL = EventView(kind=d.SPOT_SELL, order_side="sell", price=D("3199"), fraction=D("0.5"))
EXACT_REDUCE = replace(REDUCE, quantity=D("0.070"), quantity_before=D("0.137"), fraction=D("0.070") / D("0.137"))

ACTIVE = TargetView(subscription_id=1, account_id=1, active=True, sizing_model="progressive", multiplier=D("0.5"))
PAUSED = replace(ACTIVE, active=False)
LONG_MIRROR = MirrorView(side="long", quantity=D("0.05"), leverage=5)

RICH = D("100000")
NOTHING = D("0")


def decide(event, target=ACTIVE, *, free=RICH, mirror=None, holding=NOTHING, market=MARGIN, equity=None):
    return d.decide(
        event,
        target,
        free=free,
        equity=free if equity is None else equity,
        mirror=mirror,
        holding=holding,
        market=market,
    )


CASES = {
    # --- margin -------------------------------------------------------------------
    "open": (
        {"event": OPEN},
        Decision(d.COPIED, "", "open", "buy", D("0.05"), D("60000"), 10),
    ),
    "open with a leverage override": (
        {"event": OPEN, "target": replace(ACTIVE, leverage_override=3)},
        Decision(d.COPIED, "", "open", "buy", D("0.05"), D("60000"), 3),
    ),
    "open capped at the instrument's max leverage": (
        {"event": replace(OPEN, leverage=50)},
        Decision(d.COPIED, "", "open", "buy", D("0.05"), D("60000"), 20),
    ),
    "increase keeps the mirror's leverage": (
        {"event": OPEN, "mirror": LONG_MIRROR},
        Decision(d.COPIED, "", "increase", "buy", D("0.05"), D("60000"), 5),
    ),
    "reduce by the leader's fraction": (
        {"event": REDUCE, "mirror": LONG_MIRROR},
        Decision(d.COPIED, "", "reduce", "sell", D("0.015"), D("59990"), 5),
    ),
    "close": (
        {"event": CLOSE, "mirror": LONG_MIRROR},
        Decision(d.COPIED, "", "close", "sell", D("0.05"), D("59990"), 5),
    ),
    "reduce without a mirror": ({"event": REDUCE}, Decision(d.SKIPPED, d.NO_MIRROR_POSITION)),
    "close without a mirror": ({"event": CLOSE}, Decision(d.SKIPPED, d.NO_MIRROR_POSITION)),
    "paused: opens are skipped": ({"event": OPEN, "target": PAUSED}, Decision(d.SKIPPED, d.SUBSCRIPTION_PAUSED)),
    "paused: increases are skipped": (
        {"event": OPEN, "target": PAUSED, "mirror": LONG_MIRROR},
        Decision(d.SKIPPED, d.SUBSCRIPTION_PAUSED),
    ),
    "paused: closes still apply": (
        {"event": CLOSE, "target": PAUSED, "mirror": LONG_MIRROR},
        Decision(d.COPIED, "", "close", "sell", D("0.05"), D("59990"), 5),
    ),
    "paused: reduces still apply": (
        {"event": REDUCE, "target": PAUSED, "mirror": LONG_MIRROR},
        Decision(d.COPIED, "", "reduce", "sell", D("0.015"), D("59990"), 5),
    ),
    "margin not copied": (
        {"event": OPEN, "target": replace(ACTIVE, copy_margin=False)},
        Decision(d.SKIPPED, d.PRODUCT_NOT_COPIED),
    ),
    "insufficient margin": (
        # 0.05 x 60000 / 10 = 300 of margin; one unit less is free.
        {"event": OPEN, "free": D("299.99999999")},
        Decision(d.REJECTED, d.INSUFFICIENT_MARGIN, None, "", D("0.05"), D("60000"), 10),
    ),
    "exactly enough margin": (
        {"event": OPEN, "free": D("300")},
        Decision(d.COPIED, "", "open", "buy", D("0.05"), D("60000"), 10),
    ),
    "below min quantity": (
        # 0.1 x 0.005 = 0.0005 < 0.001
        {"event": OPEN, "target": replace(ACTIVE, multiplier=D("0.005"))},
        Decision(d.SKIPPED, BELOW_MIN_QUANTITY),
    ),
    "below min notional": (
        {
            "event": OPEN,
            "market": replace(MARGIN, constraints=replace(MARGIN.constraints, min_notional=D("3000.01"))),
        },
        Decision(d.SKIPPED, BELOW_MIN_NOTIONAL),
    ),
    "reduce leaving less than min qty closes all": (
        # 0.015 x 0.5 = 0.0075 → 0.007; 0.008 would remain, below the 0.01 minimum.
        {
            "event": replace(REDUCE, fraction=D("0.5")),
            "mirror": replace(LONG_MIRROR, quantity=D("0.015")),
            "market": replace(MARGIN, constraints=replace(MARGIN.constraints, min_qty=D("0.01"))),
        },
        Decision(d.COPIED, "", "close", "sell", D("0.015"), D("59990"), 5),
    ),
    "reduce leaving exactly min qty stays a reduce": (
        {
            "event": replace(REDUCE, fraction=D("0.5")),
            "mirror": replace(LONG_MIRROR, quantity=D("0.02")),
            "market": replace(MARGIN, constraints=replace(MARGIN.constraints, min_qty=D("0.01"))),
        },
        Decision(d.COPIED, "", "reduce", "sell", D("0.01"), D("59990"), 5),
    ),
    "reduce rounding to nothing is skipped": (
        {"event": replace(REDUCE, fraction=D("0.01")), "mirror": LONG_MIRROR},
        Decision(d.SKIPPED, BELOW_MIN_QUANTITY),
    ),
    # Events carry the leader's quantity and its position before; REDUCE above
    # (fraction only) is how events recorded before that look, still sized.
    "reduce by the leader's exact quantities: a mirror the leader's size reduces the same": (
        # 0.137 x 0.070 / 0.137 = 0.070 exactly (the rounded fraction gave 0.069).
        {"event": EXACT_REDUCE, "mirror": replace(LONG_MIRROR, quantity=D("0.137"))},
        Decision(d.COPIED, "", "reduce", "sell", D("0.070"), D("59990"), 5),
    ),
    "reduce by the leader's exact quantities: a smaller mirror gets the floor of its share": (
        # 0.05 x 0.070 / 0.137 = 0.02554… → 0.025
        {"event": EXACT_REDUCE, "mirror": LONG_MIRROR},
        Decision(d.COPIED, "", "reduce", "sell", D("0.025"), D("59990"), 5),
    ),
    "reduce by exact quantities never takes more than the mirror holds": (
        # 0.068 x 0.070 / 0.137 = 0.0347… → 0.034; the rest, 0.034, stays open
        {"event": EXACT_REDUCE, "mirror": replace(LONG_MIRROR, quantity=D("0.068"))},
        Decision(d.COPIED, "", "reduce", "sell", D("0.034"), D("59990"), 5),
    ),
    # --- spot ---------------------------------------------------------------------
    "spot buy": (
        {"event": SPOT_BUY, "market": SPOT},
        Decision(d.COPIED, "", "spot_buy", "buy", D("1"), D("3200"), 1),
    ),
    "spot sell the leader's fraction of the holding": (
        {"event": SPOT_SELL, "market": SPOT, "holding": D("1.5")},
        Decision(d.COPIED, "", "spot_sell", "sell", D("0.75"), D("3199"), 1),
    ),
    "spot sell the leader's exact share of the holding": (
        # 3.13 x 0.78 / 3.13 = 0.78 (the rounded fraction gave 0.7799 on a 0.0001 step)
        {
            "event": replace(SPOT_SELL, quantity=D("0.78"), quantity_before=D("3.13"), fraction=D("0.78") / D("3.13")),
            "market": replace(SPOT, constraints=replace(SPOT.constraints, qty_step=D("0.0001"))),
            "holding": D("3.13"),
        },
        Decision(d.COPIED, "", "spot_sell", "sell", D("0.78"), D("3199"), 1),
    ),
    "spot sell of the leader's whole holding sells all of the follower's": (
        {"event": replace(SPOT_SELL, quantity=D("2"), quantity_before=D("2")), "market": SPOT, "holding": D("0.12345")},
        Decision(d.COPIED, "", "spot_sell", "sell", D("0.12345"), D("3199"), 1),
    ),
    "spot sell everything": (
        {"event": replace(SPOT_SELL, fraction=D("1")), "market": SPOT, "holding": D("0.12345")},
        Decision(d.COPIED, "", "spot_sell", "sell", D("0.12345"), D("3199"), 1),
    ),
    "spot sell without a holding": (
        {"event": SPOT_SELL, "market": SPOT},
        Decision(d.SKIPPED, d.NO_HOLDING_TO_SELL),
    ),
    "spot buy paused": (
        {"event": SPOT_BUY, "market": SPOT, "target": PAUSED},
        Decision(d.SKIPPED, d.SUBSCRIPTION_PAUSED),
    ),
    "spot sell paused still applies": (
        {"event": SPOT_SELL, "market": SPOT, "target": PAUSED, "holding": D("1")},
        Decision(d.COPIED, "", "spot_sell", "sell", D("0.5"), D("3199"), 1),
    ),
    "spot not copied": (
        {"event": SPOT_BUY, "market": SPOT, "target": replace(ACTIVE, copy_spot=False)},
        Decision(d.SKIPPED, d.PRODUCT_NOT_COPIED),
    ),
    "spot buy without the cash": (
        {"event": SPOT_BUY, "market": SPOT, "free": D("3199.99999999")},
        Decision(d.REJECTED, d.INSUFFICIENT_FUNDS, None, "", D("1"), D("3200"), 1),
    ),
    "spot buy below min notional": (
        {
            "event": SPOT_BUY,
            "market": replace(SPOT, constraints=replace(SPOT.constraints, min_notional=D("3200.01"))),
        },
        Decision(d.SKIPPED, BELOW_MIN_NOTIONAL),
    ),
    "spot buy of a pair quoted in another currency": (
        {"event": SPOT_BUY, "market": CROSS_SPOT},
        Decision(d.SKIPPED, d.SPOT_PAIR_QUOTE_MISMATCH),
    ),
    "spot sell of a pair quoted in another currency": (
        {"event": SPOT_SELL, "market": CROSS_SPOT, "holding": D("1")},
        Decision(d.SKIPPED, d.SPOT_PAIR_QUOTE_MISMATCH),
    ),
}


@pytest.mark.parametrize(("kwargs", "expected"), CASES.values(), ids=CASES.keys())
def test_decide(kwargs, expected):
    assert decide(**kwargs) == expected


def test_sizing_models_flow_into_the_decision():
    fixed = replace(ACTIVE, sizing_model="fixed", multiplier=None, fixed_notional=D("1500"))
    assert decide(OPEN, fixed).quantity == D("0.025")  # 1500 / 60000
    adaptive = replace(ACTIVE, sizing_model="adaptive", multiplier=None, risk_factor=D("2"))
    # follower equity 1000 / leader equity 20000 x 2 → 10 % of 0.1
    decision = decide(replace(OPEN, leader_equity=D("20000")), adaptive, free=D("1000"))
    assert (decision.outcome, decision.quantity) == (d.COPIED, D("0.01"))
    # An adaptive follower of a leader without equity gets nothing.
    assert decide(OPEN, adaptive).reason == BELOW_MIN_QUANTITY


def test_sells_use_the_sell_price_and_buys_the_buy_price():
    short_open = replace(OPEN, order_side="sell")
    assert decide(short_open).price == MARGIN.fill_price_sell
    assert decide(OPEN).price == MARGIN.fill_price_buy


def test_unknown_event_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        decide(replace(OPEN, kind="position_teleport"))


@pytest.mark.parametrize("reason", [d.ADVANCED_ORDER_NOT_SUPPORTED, d.STOP_ORDER_NOT_SUPPORTED_FOR_COPY])
@pytest.mark.parametrize(
    "target",
    [ACTIVE, PAUSED, replace(ACTIVE, copy_margin=False), replace(ACTIVE, copy_spot=False)],
    ids=["active", "paused", "no-margin", "no-spot"],
)
def test_a_not_copied_order_skips_every_follower_with_its_reason_and_needs_no_market(target, reason):
    event = EventView(kind=d.ORDER_NOT_COPIED, order_side="buy", price=D("0"), quantity=D("1"), reason_code=reason)
    # The event's reason comes before the pause and product checks: everyone sees why.
    assert decide(event, target, mirror=LONG_MIRROR, holding=D("3"), market=None) == Decision(d.SKIPPED, reason)


def test_a_not_copied_order_without_a_known_reason_is_a_programming_error():
    with pytest.raises(ValueError):
        decide(EventView(kind=d.ORDER_NOT_COPIED, order_side="buy", price=D("0"), reason_code="SOMETHING"))
    with pytest.raises(ValueError):
        decide(OPEN, market=None)
