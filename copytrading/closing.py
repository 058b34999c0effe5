"""Emptying an account (a copy wallet being closed by unfollow, or closed
out by the risk watchdog): cancel its resting orders and sell its spot
holdings at market. Its open positions close through
``trading.position_close`` like any other close."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from copytrading import reservations, trade_math
from copytrading.errors import DomainError
from copytrading.models import Holding, Instrument, Order, OrderStatus, Product
from copytrading.money import ZERO, floor_to_step
from copytrading.venue import SPOT_SELL, Fill, apply_fills


def account_orders_cancel(*, account_id: int) -> int:
    """Cancel every resting order of an account (a copy wallet being closed:
    its mirror limits included), releasing their reservations in one write.
    The caller holds the account's row lock. Returns how many it cancelled."""
    return accounts_orders_cancel(account_ids=[account_id]).get(account_id, 0)


def accounts_orders_cancel(*, account_ids: Sequence[int]) -> dict[int, int]:
    """``account_orders_cancel`` for many accounts, set-based; returns how
    many orders each had cancelled. The caller holds the accounts' row locks."""
    orders = list(
        Order.objects.select_for_update(of=("self",))
        .select_related("instrument")
        .filter(account_id__in=list(account_ids), status=OrderStatus.OPEN)
        .order_by("pk")
    )
    if not orders:
        return {}
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(status=OrderStatus.CANCELLED, reserved=ZERO)
    reservations.release((o.account_id, o.instrument, o.side, o.reserved) for o in orders)
    return dict(Counter(o.account_id for o in orders))


def account_holdings_sell(*, account_id: int) -> int:
    """Sell every spot holding of an account at market for the primary
    currency (a copy wallet being closed), dust below the instrument's
    minimum included: nothing may stay behind in a closed wallet. The caller
    holds the account's row lock. Returns how many holdings it sold."""
    holdings = list(Holding.objects.select_for_update().filter(account_id=account_id, quantity__gt=0).order_by("pk"))
    if not holdings:
        return 0
    pairs = _primary_pairs([h.asset for h in holdings])
    fills = []
    for holding in holdings:
        instrument = pairs.get(holding.asset)
        if instrument is None:
            raise DomainError(
                "NO_MARKET_FOR_HOLDING",
                f"{holding.asset} has no priced {settings.PRIMARY_CURRENCY} market to sell it on; retry later.",
                status=409,
            )
        fills.append(_market_sell(holding, instrument, holding.quantity))
    _sell(fills)
    return len(fills)


def _sell(fills: list[Fill]) -> None:
    """Write market sells: on the paper venue at once; for accounts bound to
    an exchange, as pending orders sent there (copytrading.venues.exchange),
    applied when the exchange fills them."""
    from copytrading.venues import exchange_bound

    bound = exchange_bound({f.account_id for f in fills}) if fills else set()
    if bound:
        from copytrading.venues.exchange import Pending, write_pending

        by_instrument: dict[int, list[Fill]] = {}
        for f in fills:
            if f.account_id in bound:
                # What a sale already pending at the exchange holds is not sold again.
                f.quantity = min(f.quantity, f.holding.quantity - f.holding.reserved)
                if f.quantity > 0:
                    by_instrument.setdefault(f.instrument.pk, []).append(f)
        for batch in by_instrument.values():
            write_pending(
                batch[0].instrument,
                [
                    Pending(
                        account_id=f.account_id,
                        side=f.order_side,
                        action=SPOT_SELL,
                        quantity=f.quantity,
                        price=f.price,
                        leverage=1,
                        position_id=None,
                        holding=f.holding,
                        subscription_id=None,
                        leader_event_id=None,
                        client_order_id=None,
                    )
                    for f in batch
                ],
            )
    apply_fills([f for f in fills if f.account_id not in bound])


def _market_sell(holding: Holding, instrument: Instrument, quantity: Decimal) -> Fill:
    """A sell of ``quantity`` of ``holding`` at the instrument's market price."""
    price = trade_math.fill_price(
        instrument.mark_price, trade_math.SELL, settings.PAPER_SPREAD_BPS, instrument.price_tick
    )
    return Fill(holding.account_id, instrument, trade_math.SELL, SPOT_SELL, quantity, price, holding=holding)


def _primary_pairs(assets: Sequence[str]) -> dict[str, Instrument]:
    pairs: dict[str, Instrument] = {}
    for instrument in Instrument.objects.filter(
        product=Product.SPOT, quote=settings.PRIMARY_CURRENCY, base__in=sorted(set(assets)), mark_price__isnull=False
    ).order_by("pk"):
        pairs.setdefault(instrument.base, instrument)
    return pairs


@dataclass(slots=True)
class ForcedSale:
    """What a forced sale did to one account's spot holdings."""

    cancelled_orders: int = 0
    sold: int = 0  # holdings sold, whole or down to the step
    # Asset: quantity left behind, below the pair's quantity step or minimum
    # quantity (or with no priced market to sell it on).
    dust: dict[str, Decimal] = field(default_factory=dict)


def accounts_holdings_force_sell(*, account_ids: Sequence[int]) -> dict[int, ForcedSale]:
    """Close out the spot side of these accounts as a venue would (the risk
    watchdog's pause-and-close): cancel their resting orders first (a resting
    sell holds part of a holding, a resting buy would buy again after the
    close), then sell each holding at market, its quantity rounded down to
    the instrument's step. What cannot be sold (below the step or the
    minimum quantity, or no priced market) stays as dust and is reported.
    Set-based: one fill batch for every account. The caller holds the
    accounts' row locks. Only accounts with something to report are in the
    result."""
    out: dict[int, ForcedSale] = {}
    for account_id, n in accounts_orders_cancel(account_ids=account_ids).items():
        out.setdefault(account_id, ForcedSale()).cancelled_orders = n
    holdings = list(
        Holding.objects.select_for_update().filter(account_id__in=list(account_ids), quantity__gt=0).order_by("pk")
    )
    if not holdings:
        return out
    pairs = _primary_pairs([h.asset for h in holdings])
    fills = []
    for holding in holdings:
        sale = out.setdefault(holding.account_id, ForcedSale())
        instrument = pairs.get(holding.asset)
        # The orders are cancelled, so nothing is reserved any more; the
        # free part is taken all the same, in case a reservation outlives them.
        quantity = ZERO if instrument is None else floor_to_step(holding.free, instrument.qty_step)
        if instrument is not None and quantity < instrument.min_qty:
            quantity = ZERO
        if holding.quantity > quantity:
            sale.dust[holding.asset] = holding.quantity - quantity
        if quantity <= 0:
            continue
        fills.append(_market_sell(holding, instrument, quantity))
        sale.sold += 1
    _sell(fills)
    return out
