import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copytrading.market_sim import MAX_SIGMAS, MAX_VOLATILITY_BPS, next_price, walk

prices = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("10000000"), places=8)
volatilities = st.integers(min_value=0, max_value=int(MAX_VOLATILITY_BPS))
reversions = st.decimals(min_value=Decimal("0"), max_value=Decimal("0.2"), places=4)
seeds = st.integers(min_value=0, max_value=2**32)


@given(price=prices, seed=seeds, volatility=volatilities, anchor=st.none() | prices, reversion=reversions)
def test_next_price_is_positive_with_8_places_and_deterministic(price, seed, volatility, anchor, reversion):
    first = next_price(price, random.Random(seed), volatility, anchor=anchor, reversion=reversion)
    again = next_price(price, random.Random(seed), volatility, anchor=anchor, reversion=reversion)
    assert first > 0
    assert first == first.quantize(Decimal("0.00000001"))
    assert first == again


@given(price=prices, seed=seeds, volatility=volatilities)
def test_one_step_moves_at_most_four_sigmas(price, seed, volatility):
    new = next_price(price, random.Random(seed), volatility)
    bound = price * MAX_SIGMAS * volatility / Decimal(10000)
    # + one unit of the last place for the rounding up to 8 places
    assert abs(new - price) <= bound + Decimal("0.00000001")


@given(price=prices, anchor=prices, seed=seeds, reversion=reversions)
def test_without_volatility_the_price_moves_towards_the_anchor_and_never_past_it(price, anchor, seed, reversion):
    new = next_price(price, random.Random(seed), 0, anchor=anchor, reversion=reversion)
    low, high = min(price, anchor), max(price, anchor)
    assert low <= new <= high + Decimal("0.00000001")


@given(seed=seeds, steps=st.integers(min_value=1, max_value=50))
def test_a_long_walk_stays_positive(seed, steps):
    rng = random.Random(seed)
    price = Decimal("0.00001")
    for _ in range(steps):
        price = next_price(price, rng, MAX_VOLATILITY_BPS)
        assert price > 0


@given(seed=seeds, volatility=volatilities)
def test_walk_depends_on_the_seed_not_on_the_mapping_order(seed, volatility):
    forward = {"BTC": Decimal("64000"), "ETH": Decimal("3200"), "SOL": Decimal("150")}
    backward = dict(reversed(list(forward.items())))
    assert walk(forward, random.Random(seed), volatility) == walk(backward, random.Random(seed), volatility)


def test_same_seed_same_path_other_seed_other_path():
    def path(seed: int) -> list[Decimal]:
        rng, price, out = random.Random(seed), Decimal("100"), []
        for _ in range(20):
            price = next_price(price, rng, 50)
            out.append(price)
        return out

    assert path(1) == path(1)
    assert path(1) != path(2)


@pytest.mark.parametrize(
    ("price", "volatility", "reversion"),
    [
        (Decimal("0"), 10, Decimal("0")),
        (Decimal("-1"), 10, Decimal("0")),
        (Decimal("NaN"), 10, Decimal("0")),
        (Decimal("1"), -1, Decimal("0")),
        (Decimal("1"), int(MAX_VOLATILITY_BPS) + 1, Decimal("0")),
        (Decimal("1"), 10, Decimal("0.21")),
    ],
)
def test_out_of_range_inputs_are_refused(price, volatility, reversion):
    with pytest.raises(ValueError):
        next_price(price, random.Random(0), volatility, anchor=Decimal("1"), reversion=reversion)
