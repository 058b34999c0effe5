"""Resting limit orders of an account's own book, margin and spot: place,
re-price and cancel. They fill when the mark crosses them (copytrading.matching).
What each one holds meanwhile is explained in copytrading.reservations."""

from decimal import Decimal

from django.db import transaction

from copytrading import ledger, reservations, trade_math
from copytrading.decisions.spot import spot_limit_reserve
from copytrading.errors import DomainError
from copytrading.models import Holding, Instrument, Order, OrderStatus, OrderType, Product
from copytrading.money import ZERO
from copytrading.trading.common import (
    margin_delta_lock,
    validate_leverage,
    validate_price,
    validate_quantity,
    validate_side,
)


def _refuse_marketable(instrument: Instrument, side: str, price: Decimal) -> None:
    # A resting order only: one the mark already crosses would fill at once,
    # at a worse price than a market order (the paper venue fills limits at
    # their limit price). Refusing it keeps "fills when the market crosses"
    # true for the leader and for every mirror.
    if trade_math.crossed(side, price, instrument.mark_price):
        relation = "below" if side == trade_math.BUY else "above"
        raise DomainError(
            "LIMIT_PRICE_MARKETABLE",
            f"A {side} limit must be {relation} the mark price {instrument.mark_price.normalize()}; "
            "use a market order to trade now.",
            field="price",
        )


def _reservation(instrument: Instrument, side: str, quantity: Decimal, price: Decimal, leverage: int) -> Decimal:
    """What a resting order holds (copytrading.reservations). A margin order
    is reserved as if it opened a position: enough for any netting it fills
    into (a reduce or close frees margin, a flip opens less)."""
    if instrument.product == Product.SPOT:
        return spot_limit_reserve(quantity, price, side)
    return trade_math.margin_for(quantity, price, leverage)


def _reserve(account_id: int, instrument: Instrument, side: str, amount: Decimal, *, field: str, what: str) -> None:
    """Move ``amount`` (negative: give back) from free into reserved, in the
    asset the order pays with; refused if more than is free. The account is
    already row-locked."""
    asset = instrument.reserved_asset(side)
    if asset is None:
        of = "margin" if instrument.product == Product.MARGIN else "cash"
        margin_delta_lock(account_id, amount, needs=f"{what} reserves", field=field, of=of)
        return
    holding = Holding.objects.select_for_update().filter(account_id=account_id, asset=asset).first()
    free = holding.free if holding else ZERO
    if amount > free:
        raise DomainError(
            "INSUFFICIENT_HOLDING",
            f"{what} needs {amount.normalize()} {asset} more; {free.normalize()} is free to use.",
            field=field,
        )
    if amount:
        holding.reserved += amount
        holding.save(update_fields=["reserved"])


@transaction.atomic
def limit_order_place(
    *, account_id: int, instrument: Instrument, side: str, quantity: Decimal, price: Decimal, leverage: int
) -> Order:
    """Rest a limit order, what it needs reserved from the free balance (a
    spot sell: from the free holding)."""
    validate_side(side)
    spot = instrument.product == Product.SPOT
    if spot:
        leverage = 1
    else:
        validate_leverage(instrument, leverage)
    price = validate_price(instrument, price)
    validate_quantity(instrument, quantity, price)
    _refuse_marketable(instrument, side, price)
    ledger.lock_accounts([account_id])
    reserved = _reservation(instrument, side, quantity, price, leverage)
    _reserve(account_id, instrument, side, reserved, field="quantity", what="This order")
    return Order.objects.create(
        account_id=account_id,
        instrument=instrument,
        side=side,
        order_type=OrderType.LIMIT,
        quantity=quantity,
        price=price,
        leverage=leverage,
        status=OrderStatus.OPEN,
        reserved=reserved,
    )


def _lock_resting_order(order_id: int, account_id: int, *, mirror: bool = False) -> Order:
    """A resting order of the account under its row lock: the account's own
    order, or (``mirror``) a mirror order, which only the system changes."""
    order = (
        Order.objects.select_for_update(of=("self",))
        .select_related("instrument")
        .filter(pk=order_id, account_id=account_id, leader_order__isnull=not mirror)
        .first()
    )
    if order is None:
        raise DomainError("NOT_FOUND", "The order does not exist or is not yours.", status=404)
    if order.status != OrderStatus.OPEN:
        raise DomainError(
            "ORDER_NOT_OPEN", f"The order is {order.status}; only a resting order can change.", status=409
        )
    return order


@transaction.atomic
def limit_order_reprice(*, order_id: int, account_id: int, price: Decimal) -> tuple[Order, Decimal]:
    """Move a resting limit to a new price; returns the order and its old price."""
    ledger.lock_accounts([account_id])
    order = _lock_resting_order(order_id, account_id)
    instrument = order.instrument
    price = validate_price(instrument, price)
    validate_quantity(instrument, order.quantity, price)
    _refuse_marketable(instrument, order.side, price)
    if price == order.price:
        raise DomainError("PRICE_UNCHANGED", "The order already rests at this price.", field="price")
    reserved = _reservation(instrument, order.side, order.quantity, price, order.leverage)
    _reserve(account_id, instrument, order.side, reserved - order.reserved, field="price", what="The new price")
    old_price = order.price
    order.price, order.reserved = price, reserved
    order.save(update_fields=["price", "reserved"])
    return order, old_price


@transaction.atomic
def limit_order_cancel(*, order_id: int, account_id: int, mirror: bool = False) -> Order:
    ledger.lock_accounts([account_id])
    order = _lock_resting_order(order_id, account_id, mirror=mirror)
    reservations.release([(account_id, order.instrument, order.side, order.reserved)])
    order.status, order.reserved = OrderStatus.CANCELLED, ZERO
    order.save(update_fields=["status", "reserved"])
    return order
