"""What a resting limit order holds until it fills or is cancelled.

``Order.reserved`` is always counted in the asset the order pays with:

- a margin order, or a spot buy quoted in the primary currency: the primary
  currency, held in ``Account.locked`` (margin, or the buy's cost);
- a spot sell: the base quantity it sells, held in the base ``Holding.reserved``;
- a spot buy quoted in another asset (ETH/BTC): its cost in that asset, held
  in the quote asset's ``Holding.reserved``.

So a reservation never leaves the account: placing one moves free into
reserved, and a fill or a cancellation gives it back exactly. The rule
itself is ``Instrument.reserved_asset``.
"""

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Q

from copytrading import bulk, ledger
from copytrading.models import Holding, Instrument
from copytrading.money import ZERO


def release(
    orders: Iterable[tuple[int, Instrument, str, Decimal]],
    *,
    holdings: dict[tuple[int, str], Holding] | None = None,
) -> None:
    """Give back what resting orders ``(account id, instrument, side,
    reserved)`` held, in one write per table. The accounts are row-locked by
    the caller. Holdings the caller has already locked and keeps in memory
    are passed in ``holdings`` (keyed by account id and asset) and updated in
    place, so a later write of the same objects stays right; the others are
    locked here."""
    _move(orders, -1, holdings)


def hold(
    orders: Iterable[tuple[int, Instrument, str, Decimal]],
    *,
    holdings: dict[tuple[int, str], Holding] | None = None,
) -> None:
    """The reverse of ``release``: set aside what new orders ``(account id,
    instrument, side, reserved)`` will pay with (an order pending at an
    exchange holds it until its fill is applied). The caller has checked it
    is free; the CHECK constraints still guard."""
    _move(orders, 1, holdings)


def _move(
    orders: Iterable[tuple[int, Instrument, str, Decimal]],
    sign: int,
    holdings: dict[tuple[int, str], Holding] | None,
) -> None:
    locked: dict[int, Decimal] = defaultdict(lambda: ZERO)
    by_holding: dict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)
    for account_id, instrument, side, reserved in orders:
        if not reserved:
            continue
        asset = instrument.reserved_asset(side)
        if asset is None:
            locked[account_id] += sign * reserved
        else:
            by_holding[(account_id, asset)] += reserved
    ledger.apply_transfers([], locked_deltas={k: v for k, v in locked.items() if v})
    if not by_holding:
        return
    known = holdings or {}
    missing = [key for key in by_holding if key not in known]
    if missing:
        wanted = Q()
        for account_id, asset in missing:
            wanted |= Q(account_id=account_id, asset=asset)
        locked_now = Holding.objects.select_for_update().filter(wanted).order_by("pk")
        known = {**known, **{(h.account_id, h.asset): h for h in locked_now}}
    changed = []
    for key, amount in by_holding.items():
        holding = known[key]
        holding.reserved += sign * amount
        changed.append((holding.pk, holding.reserved))
    bulk.update_rows(Holding, ["reserved"], changed)
