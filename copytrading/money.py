"""Decimal helpers. Pure: no Django."""

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

Q8 = Decimal("0.00000001")
# A leader's reduce or sell as a share of what it held, shown on execution
# rows: 10 places, for people only (sizing uses the exact quantities).
FRACTION_PLACES = 10
Q_FRACTION = Decimal(1).scaleb(-FRACTION_PLACES)
CENT = Decimal("0.01")
ZERO = Decimal("0")


def q8(value: Decimal) -> Decimal:
    """Quote amounts: 8 dp, banker's rounding."""
    return value.quantize(Q8, rounding=ROUND_HALF_EVEN)


def q_fraction(value: Decimal) -> Decimal:
    """A share for display: FRACTION_PLACES places, banker's rounding."""
    return value.quantize(Q_FRACTION, rounding=ROUND_HALF_EVEN)


def q8_up(value: Decimal) -> Decimal:
    return value.quantize(Q8, rounding=ROUND_CEILING)


def q8_down(value: Decimal) -> Decimal:
    return value.quantize(Q8, rounding=ROUND_FLOOR)


def cents_down(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_DOWN)


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` that is <= value (value >= 0)."""
    if value <= 0:
        return ZERO
    return (value // step) * step


def round_to_tick(value: Decimal, tick: Decimal, *, up: bool) -> Decimal:
    units = (value / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return units * tick


def parse_decimal(raw: object) -> Decimal | None:
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return value if value.is_finite() else None
