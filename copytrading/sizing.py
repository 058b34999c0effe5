"""Follower sizing and instrument constraints. Pure: no Django.

Sizing turns the leader's quantity into the follower's; constraints then make
it something the venue would accept, or say why the copy is skipped.
"""

from dataclasses import dataclass
from decimal import Decimal

from copytrading.money import ZERO, floor_to_step


class SizingModel:
    PROGRESSIVE = "progressive"
    FIXED = "fixed"
    ADAPTIVE = "adaptive"

    ALL = (PROGRESSIVE, FIXED, ADAPTIVE)


# (parameter name, lower, lower inclusive, upper or None, upper inclusive)
PARAMETER_RANGES: dict[str, tuple[str, Decimal, bool, Decimal | None, bool]] = {
    SizingModel.PROGRESSIVE: ("multiplier", Decimal("0"), False, Decimal("1"), True),
    SizingModel.FIXED: ("fixed_notional", Decimal("0"), False, None, False),
    SizingModel.ADAPTIVE: ("risk_factor", Decimal("0"), True, Decimal("3"), True),
}


def describe_range(model: str) -> str:
    name, low, low_incl, high, high_incl = PARAMETER_RANGES[model]
    left = "[" if low_incl else "("
    if high is None:
        return f"{name} > {low}" if not low_incl else f"{name} >= {low}"
    right = "]" if high_incl else ")"
    return f"{name} in {left}{low}, {high}{right}"


def parameter_error(model: str, value: Decimal | None) -> str | None:
    """None if ``value`` is allowed for ``model``, else a sentence naming the range."""
    if model not in PARAMETER_RANGES:
        return f"sizing_model must be one of {', '.join(SizingModel.ALL)}"
    _, low, low_incl, high, high_incl = PARAMETER_RANGES[model]
    if value is None:
        return f"{describe_range(model)} is required"
    ok_low = value >= low if low_incl else value > low
    ok_high = True if high is None else (value <= high if high_incl else value < high)
    return None if ok_low and ok_high else f"{describe_range(model)}"


def follower_quantity(
    *,
    model: str,
    leader_quantity: Decimal,
    price: Decimal,
    multiplier: Decimal | None = None,
    fixed_notional: Decimal | None = None,
    risk_factor: Decimal | None = None,
    follower_equity: Decimal | None = None,
    leader_equity: Decimal | None = None,
) -> Decimal:
    """The raw (unconstrained) follower quantity for one leader fill."""
    if model == SizingModel.PROGRESSIVE:
        return leader_quantity * multiplier
    if model == SizingModel.FIXED:
        return fixed_notional / price
    if model == SizingModel.ADAPTIVE:
        if not leader_equity or leader_equity <= 0 or follower_equity is None or follower_equity <= 0:
            return ZERO
        return leader_quantity * (follower_equity / leader_equity) * risk_factor
    raise ValueError(f"unknown sizing model {model!r}")


@dataclass(frozen=True)
class Constraints:
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal


BELOW_MIN_QUANTITY = "BELOW_MIN_QUANTITY"
BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"


def constrain(quantity: Decimal, price: Decimal, c: Constraints) -> tuple[Decimal, str | None]:
    """Cap at max, round down to the step; refuse below min quantity/notional."""
    capped = min(quantity, c.max_qty)
    stepped = floor_to_step(capped, c.qty_step)
    if stepped <= 0 or stepped < c.min_qty:
        return ZERO, BELOW_MIN_QUANTITY
    if stepped * price < c.min_notional:
        return ZERO, BELOW_MIN_NOTIONAL
    return stepped, None
