"""Emptying an account for good (a copy wallet being closed by unfollow):
cancel its resting orders and sell its spot holdings at market. Its open
positions close through ``trading.position_close`` like any other close."""

from django.conf import settings

from copytrading import reservations, trade_math
from copytrading.errors import DomainError
from copytrading.models import Holding, Instrument, Order, OrderStatus, Product
from copytrading.money import ZERO
from copytrading.venue import SPOT_SELL, Fill, apply_fills


def account_orders_cancel(*, account_id: int) -> int:
    """Cancel every resting order of an account (a copy wallet being closed:
    its mirror limits included), releasing their reservations in one write.
    The caller holds the account's row lock. Returns how many it cancelled."""
    orders = list(
        Order.objects.select_for_update(of=("self",))
        .select_related("instrument")
        .filter(account_id=account_id, status=OrderStatus.OPEN)
        .order_by("pk")
    )
    if not orders:
        return 0
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(status=OrderStatus.CANCELLED, reserved=ZERO)
    reservations.release((account_id, o.instrument, o.side, o.reserved) for o in orders)
    return len(orders)


def account_holdings_sell(*, account_id: int) -> int:
    """Sell every spot holding of an account at market for the primary
    currency (a copy wallet being closed), dust below the instrument's
    minimum included: nothing may stay behind in a closed wallet. The caller
    holds the account's row lock. Returns how many holdings it sold."""
    holdings = list(Holding.objects.select_for_update().filter(account_id=account_id, quantity__gt=0).order_by("pk"))
    if not holdings:
        return 0
    pairs: dict[str, Instrument] = {}
    for instrument in Instrument.objects.filter(
        product=Product.SPOT,
        quote=settings.PRIMARY_CURRENCY,
        base__in=[h.asset for h in holdings],
        mark_price__isnull=False,
    ).order_by("pk"):
        pairs.setdefault(instrument.base, instrument)
    fills = []
    for holding in holdings:
        instrument = pairs.get(holding.asset)
        if instrument is None:
            raise DomainError(
                "NO_MARKET_FOR_HOLDING",
                f"{holding.asset} has no priced {settings.PRIMARY_CURRENCY} market to sell it on; retry later.",
                status=409,
            )
        price = trade_math.fill_price(
            instrument.mark_price, trade_math.SELL, settings.PAPER_SPREAD_BPS, instrument.price_tick
        )
        fills.append(Fill(account_id, instrument, trade_math.SELL, SPOT_SELL, holding.quantity, price, holding=holding))
    apply_fills(fills)
    return len(fills)
