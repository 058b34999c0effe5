"""Rules every kind of copy shares: sizing to the venue's constraints,
a follower's share of a leader's reduce or sell, and the slippage
tolerance. Pure."""

from decimal import Decimal

from copytrading import sizing, trade_math
from copytrading.decisions.model import EventView, MarketView, Share, TargetView


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
) -> tuple[Decimal, str | None, Decimal]:
    """The follower's quantity under its sizing model and the venue's
    constraints, or the reason it rounds to nothing; and the quantity before
    the constraints (what the execution row records as attempted)."""
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
    quantity, reason = sizing.constrain(raw, price, market.constraints)
    return quantity, reason, raw
