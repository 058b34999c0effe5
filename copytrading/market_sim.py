"""The price simulator's random walk. Pure: no Django.

A multiplicative walk with a gentle pull back to an anchor price, so a demo
that runs for hours keeps its markets near believable levels. All randomness
comes from the ``random.Random`` passed in, so one seed gives one path.
"""

import random
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal

from copytrading.money import Q8

BPS = Decimal("10000")
# A shock is a standard normal draw cut at ±4 sigma. With the volatility capped at
# 20 % and the anchor pull at 10 %, the price factor stays >= 1 - 0.8 - 0.1:
# a price never reaches zero.
MAX_SIGMAS = Decimal("4")
MAX_VOLATILITY_BPS = Decimal("2000")
MAX_REVERSION = Decimal("0.2")
DEFAULT_REVERSION = Decimal("0.02")


def _shock(rng: random.Random) -> Decimal:
    # The draw is a float (random has no Decimal source); it becomes a Decimal
    # with a fixed number of places before it touches a price.
    draw = Decimal(f"{rng.gauss(0.0, 1.0):.6f}")
    return max(-MAX_SIGMAS, min(MAX_SIGMAS, draw))


def next_price(
    price: Decimal,
    rng: random.Random,
    volatility_bps: Decimal | int,
    *,
    anchor: Decimal | None = None,
    reversion: Decimal = DEFAULT_REVERSION,
) -> Decimal:
    """One step of the walk: ``price * (1 + shock * volatility + pull)``.

    ``volatility_bps`` is the standard deviation of one step in basis points
    (0 ≤ v ≤ 2000). With an ``anchor``, half of ``reversion`` (0 ≤ r ≤ 0.2) of the
    relative distance to it is pulled back each step. The result has 8
    decimal places and is always > 0.
    """
    if not price.is_finite() or price <= 0:
        raise ValueError(f"price must be a positive decimal, got {price!r}")
    volatility = Decimal(volatility_bps)
    if not 0 <= volatility <= MAX_VOLATILITY_BPS:
        raise ValueError(f"volatility_bps must be in [0, {MAX_VOLATILITY_BPS}], got {volatility_bps!r}")
    if not 0 <= reversion <= MAX_REVERSION:
        raise ValueError(f"reversion must be in [0, {MAX_REVERSION}], got {reversion!r}")

    change = _shock(rng) * volatility / BPS
    if anchor is not None and anchor > 0:
        # Relative distance, bounded so a far-away anchor cannot dominate the
        # factor: the pull is at most ±(reversion / 2) <= ±0.1.
        distance = max(Decimal("-1"), min(Decimal("1"), (anchor - price) / price))
        change += distance * reversion / 2
    factor = 1 + change
    # factor >= 1 - 0.8 - 0.1 > 0. Rounding up keeps the tiniest price positive.
    return (price * factor).quantize(Q8, rounding=ROUND_CEILING)


def walk(
    prices: Mapping[str, Decimal],
    rng: random.Random,
    volatility_bps: Decimal | int,
    *,
    anchors: Mapping[str, Decimal] | None = None,
    reversion: Decimal = DEFAULT_REVERSION,
) -> dict[str, Decimal]:
    """Move every price one step. Keys are visited in sorted order so the path
    depends only on the seed, not on how the mapping was built."""
    anchors = anchors or {}
    return {
        key: next_price(prices[key], rng, volatility_bps, anchor=anchors.get(key), reversion=reversion)
        for key in sorted(prices)
    }
