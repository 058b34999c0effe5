"""Rules every kind of copy shares: sizing to the venue's constraints,
a follower's share of a leader's reduce or sell, and the slippage
tolerance. Pure."""

from dataclasses import dataclass
from decimal import Decimal, localcontext

from copytrading import sizing, trade_math
from copytrading.decisions.model import EventView, MarketView, TargetView
from copytrading.money import ZERO

# Enough digits that a product of two quantities (28 significant digits
# each at most) is exact, and so is the integer part of its quotient.
_EXACT_DIGITS = 60


@dataclass(frozen=True)
class Share:
    """The part of its position or holding the leader reduced, closed or sold.

    ``quantity`` of ``before``, both exact. Events recorded before those were
    carried have ``before`` = 0 and only ``fraction``, the quotient rounded to
    28 digits: they are still sized from it."""

    quantity: Decimal
    before: Decimal
    fraction: Decimal = ZERO

    @classmethod
    def of_event(cls, event) -> "Share":
        """The share an ``EventView`` or ``LeaderStep`` describes."""
        return cls(event.quantity, event.quantity_before, event.fraction)

    @property
    def is_all(self) -> bool:
        """The leader left nothing: every follower closes or sells all of it."""
        if self.before > 0:
            return self.quantity >= self.before
        return self.fraction >= 1

    def of(self, held: Decimal, step: Decimal) -> Decimal:
        """held x quantity ÷ before, rounded down to the step. Multiplied
        first and divided once, exactly: a follower holding what the leader
        held gets the leader's quantity, to the last step (a rounded quotient
        first, 0.78 ÷ 3.13 = 0.24920…, made 3.13 x 0.24920… = 0.77999… and
        floored it to 0.77)."""
        part, whole = (self.quantity, self.before) if self.before > 0 else (self.fraction, Decimal(1))
        if held <= 0 or part <= 0:
            return ZERO
        with localcontext() as exact:
            exact.prec = _EXACT_DIGITS
            steps = (held * part) // (whole * step)
        return steps * step


def slippage_exceeded(leader_price: Decimal, follower_price: Decimal, tolerance_pct: Decimal) -> bool:
    """True if the follower's price is more than ``tolerance_pct`` percent
    away from the leader's (exactly at the tolerance is still accepted)."""
    if leader_price <= 0:
        return False
    return abs(follower_price - leader_price) * 100 > tolerance_pct * leader_price


def reduce_by(mirror_quantity: Decimal, share: Share, c: sizing.Constraints) -> tuple[str, Decimal] | None:
    """The leader's share of the mirror (never more than it holds), or all of
    it if the leader left nothing or the rest would be below what the venue
    keeps open; None if the share rounds to nothing."""
    if share.is_all:
        return trade_math.CLOSE, mirror_quantity
    quantity = share.of(mirror_quantity, c.qty_step)
    if quantity <= 0:
        return None
    if quantity >= mirror_quantity or mirror_quantity - quantity < c.min_qty:
        return trade_math.CLOSE, mirror_quantity
    return trade_math.REDUCE, quantity


def size(
    event: EventView, target: TargetView, price: Decimal, equity: Decimal, market: MarketView
) -> tuple[Decimal, str | None]:
    """The follower's quantity under its sizing model and the venue's
    constraints, or the reason it rounds to nothing."""
    raw = sizing.follower_quantity(
        model=target.sizing_model,
        leader_quantity=event.quantity,
        price=price,
        multiplier=target.multiplier,
        fixed_notional=target.fixed_notional,
        risk_factor=target.risk_factor,
        follower_equity=equity,
        leader_equity=event.leader_equity,
    )
    return sizing.constrain(raw, price, market.constraints)
