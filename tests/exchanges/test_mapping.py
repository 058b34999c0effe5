"""ccxt market → instrument constraints: precision modes, contracts, skips (pure)."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from copytrading.exchanges.mapping import (
    DECIMAL_PLACES,
    MAX_QTY_UNBOUNDED,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    InstrumentSpec,
    Skipped,
    instrument_spec,
    step_of,
)


def market(**overrides):
    base = {
        "id": "BTCUSDT",
        "symbol": "BTC/USDT:USDT",
        "base": "BTC",
        "quote": "USDT",
        "type": "swap",
        "spot": False,
        "swap": True,
        "future": False,
        "option": False,
        "linear": True,
        "contractSize": 1.0,
        "active": True,
        "precision": {"amount": 0.001, "price": 0.1},
        "limits": {"amount": {"min": 0.001, "max": 1000.0}, "cost": {"min": 100.0}, "leverage": {"max": None}},
    }
    base.update(overrides)
    return base


def test_tick_size_mode_reads_the_steps():
    spec = instrument_spec(market(), precision_mode=TICK_SIZE)
    assert isinstance(spec, InstrumentSpec)
    assert (spec.qty_step, spec.min_qty, spec.max_qty, spec.price_tick) == (
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("1000"),
        Decimal("0.1"),
    )
    assert (spec.min_notional, spec.max_leverage, spec.product) == (Decimal("100"), None, "margin")


def test_decimal_places_mode_turns_places_into_steps():
    spec = instrument_spec(market(precision={"amount": 3, "price": 1}), precision_mode=DECIMAL_PLACES)
    assert (spec.qty_step, spec.price_tick) == (Decimal("0.001"), Decimal("0.1"))
    spec = instrument_spec(market(precision={"amount": 0, "price": 4}), precision_mode=DECIMAL_PLACES)
    assert (spec.qty_step, spec.price_tick) == (Decimal("1"), Decimal("0.0001"))
    assert step_of(2.5, DECIMAL_PLACES) is None  # places are whole


def test_significant_digits_need_a_price_and_trade_in_minimum_lots():
    m = market(precision={"amount": 5, "price": 5}, limits={"amount": {"min": 0.0001}, "cost": {}})
    skipped = instrument_spec(m, precision_mode=SIGNIFICANT_DIGITS)
    assert isinstance(skipped, Skipped) and "significant digits need a price" in skipped.reason
    spec = instrument_spec(m, precision_mode=SIGNIFICANT_DIGITS, reference_price=Decimal("64123.5"))
    assert spec.price_tick == Decimal("1")  # 5 digits of 64,123.5: 64,124
    assert spec.qty_step == Decimal("0.0001")  # the minimum lot
    assert step_of(5, SIGNIFICANT_DIGITS, reference=Decimal("0.05123")) == Decimal("0.000001")


@given(digits=st.integers(1, 8), price=st.decimals(min_value="0.001", max_value="1000000", places=3))
def test_significant_digits_tick_keeps_that_many_digits(digits, price):
    tick = step_of(digits, SIGNIFICANT_DIGITS, reference=price)
    rounded = (price / tick).to_integral_value() * tick
    assert len(rounded.normalize().as_tuple().digits) <= digits + 1  # carry: 99.99 → 100.0


def test_contract_markets_are_counted_in_base_units():
    okx = market(
        id="BTC-USDT-SWAP",
        contractSize=0.01,
        precision={"amount": 0.1, "price": 0.1},
        limits={"amount": {"min": 0.1, "max": 100000000}, "cost": {}, "leverage": {"max": 100}},
    )
    spec = instrument_spec(okx, precision_mode=TICK_SIZE)
    assert (spec.qty_step, spec.min_qty, spec.max_qty) == (Decimal("0.001"), Decimal("0.001"), Decimal("1000000"))
    assert (spec.contract_size, spec.max_leverage, spec.min_notional) == (Decimal("0.01"), 100, Decimal("0"))


def test_spot_has_no_leverage_and_an_unbounded_maximum_when_none_is_stated():
    spot = market(
        symbol="ETH/BTC",
        spot=True,
        swap=False,
        linear=None,
        limits={"amount": {"min": None, "max": None}, "cost": {"min": None}, "leverage": {"max": 10}},
    )
    spec = instrument_spec(spot, precision_mode=TICK_SIZE)
    assert (spec.product, spec.max_leverage, spec.min_qty, spec.max_qty) == (
        "spot",
        1,
        Decimal("0.001"),
        MAX_QTY_UNBOUNDED,
    )


def test_what_cannot_be_traded_is_skipped_with_a_reason():
    cases = {
        "inverse swap (settled in the base asset)": market(linear=False, inverse=True),
        "dated future": market(swap=False, future=True),
        "option": market(swap=False, option=True),
        "no amount precision": market(precision={"amount": None, "price": 0.1}),
        "quantity step 1E-9 finer than 8 decimal places": market(precision={"amount": 1e-9, "price": 0.1}),
        "maximum quantity below the minimum": market(limits={"amount": {"min": 5, "max": 1}, "cost": {}}),
        "symbol or asset name too long": market(base="X" * 11),
    }
    for reason, m in cases.items():
        result = instrument_spec(m, precision_mode=TICK_SIZE)
        assert isinstance(result, Skipped), reason
        assert result.reason == reason


def test_inactive_markets_say_so():
    assert instrument_spec(market(active=False), precision_mode=TICK_SIZE).active is False
    assert instrument_spec(market(active=None), precision_mode=TICK_SIZE).active is True
