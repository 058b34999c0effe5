"""Profit-share arithmetic. Pure: no Django.

Every figure is quantized explicitly, and always in the follower's favour:
the fee is rounded down to 8 places (never over-charged), the platform's cut
is rounded down, and the leader gets the rest, so the two parts always add up
to exactly the fee. Withdrawals are whole cents, rounded down, so the source
account never goes below zero.
"""

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from copytrading.money import CENT, Q8, ZERO

HUNDRED = Decimal("100")
PCT_PLACES = Decimal("0.01")


@dataclass(frozen=True)
class FeeSplit:
    fee: Decimal  # what leaves the follower's copy wallet
    platform_part: Decimal
    leader_part: Decimal


NO_FEE = FeeSplit(ZERO, ZERO, ZERO)


def _down8(value: Decimal) -> Decimal:
    return value.quantize(Q8, rounding=ROUND_DOWN)


def valid_pct(value: Decimal) -> bool:
    """A percentage as the product states it: 0 to 100 with at most 2 places."""
    return value.is_finite() and ZERO <= value <= HUNDRED and value == value.quantize(PCT_PLACES)


def fee_split(*, profit: Decimal, share_pct: Decimal, platform_cut_pct: Decimal) -> FeeSplit:
    """The fee on one closed position's realized ``profit`` and how it splits.

    A loss or a break-even pays nothing; so does a profit too small for the
    fee to reach one unit of 1e-8.
    """
    if not (valid_pct(share_pct) and valid_pct(platform_cut_pct)):
        raise ValueError(f"percentages must be 0-100 with 2 places: {share_pct}, {platform_cut_pct}")
    if profit <= 0 or share_pct == 0:
        return NO_FEE
    return split_fee(fee=_down8(profit * share_pct / HUNDRED), platform_cut_pct=platform_cut_pct)


def split_fee(*, fee: Decimal, platform_cut_pct: Decimal) -> FeeSplit:
    """Split an (already quantized) fee: the platform's cut rounded down, the
    leader the remainder."""
    if fee <= 0:
        return NO_FEE
    platform = _down8(fee * platform_cut_pct / HUNDRED)
    return FeeSplit(fee=fee, platform_part=platform, leader_part=fee - platform)


def fee_charge(split: FeeSplit, *, available: Decimal, platform_cut_pct: Decimal) -> FeeSplit:
    """What can actually be charged when the wallet's free balance is short of
    the fee (the position's profit was already withdrawn or is held as margin
    elsewhere): the fee is capped at what is free, and split again."""
    if split.fee <= available:
        return split
    return split_fee(fee=max(_down8(available), ZERO), platform_cut_pct=platform_cut_pct)


def high_water_base(*, mark: Decimal, total: Decimal, batch_pnl: Decimal) -> Decimal:
    """The level a high-water-mark charge starts from: the subscription's mark,
    but never below its cumulative result before this batch (``total`` less
    what the batch realized: a rise that was not charged under this model,
    made per trade or at a 0 % share, is not charged later) nor below 0. The
    charge is ``total`` less this base, when ``total`` is above it."""
    return max(mark, total - batch_pnl, ZERO)


def withdrawal_amount(requested: Decimal) -> Decimal:
    """A withdrawal moves whole cents only: anything below a cent stays put."""
    return requested.quantize(CENT, rounding=ROUND_DOWN)
