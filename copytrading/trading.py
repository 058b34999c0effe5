"""Single-account trading on the paper venue: a leader's own orders (market and
resting limit), TP/SL and leverage edits, and a follower's manual close.
Mirrors go through the propagation engine; fills of resting orders and TP/SL
and liquidation triggers through the price-driven matching (matching.py)."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from copytrading import ledger, trade_math
from copytrading.errors import DomainError, InsufficientFunds
from copytrading.models import (
    Account,
    Holding,
    Instrument,
    Order,
    OrderStatus,
    OrderType,
    Position,
    PositionStatus,
    Product,
)
from copytrading.money import Q8, ZERO, q8_up
from copytrading.venue import SPOT_BUY, SPOT_SELL, Fill, apply_fills


@dataclass(frozen=True)
class Executed:
    """One step the venue carried out (a flip gives two)."""

    action: str
    fill: Fill
    quantity_before: Decimal  # the position's (or holding's) size before the step


def instrument_for_trading(symbol: str, *, product: str | None = None) -> Instrument:
    instrument = Instrument.objects.filter(symbol=symbol, is_active=True).first()
    if instrument is None:
        raise DomainError("UNKNOWN_INSTRUMENT", f"There is no tradable instrument {symbol!r}.", field="symbol")
    if product and instrument.product != product:
        raise DomainError("WRONG_PRODUCT", f"{symbol} is not a {product} instrument.", field="symbol")
    if instrument.mark_price is None:
        raise DomainError("NO_PRICE", f"{symbol} has no market price yet.", field="symbol", status=409)
    return instrument


def validate_quantity(instrument: Instrument, quantity: Decimal, price: Decimal) -> None:
    if quantity <= 0:
        raise DomainError("INVALID_QUANTITY", "The quantity must be greater than zero.", field="quantity")
    if quantity % instrument.qty_step:
        raise DomainError(
            "INVALID_QUANTITY",
            f"The quantity must be a multiple of {instrument.qty_step.normalize()}.",
            field="quantity",
        )
    if quantity < instrument.min_qty or quantity > instrument.max_qty:
        raise DomainError(
            "INVALID_QUANTITY",
            f"The quantity must be between {instrument.min_qty.normalize()} and {instrument.max_qty.normalize()}.",
            field="quantity",
        )
    if quantity * price < instrument.min_notional:
        raise DomainError(
            "BELOW_MIN_NOTIONAL",
            f"The order value must be at least {instrument.min_notional.normalize()}.",
            field="quantity",
        )


def _lock_open_position(account_id: int, instrument: Instrument) -> Position | None:
    return (
        Position.objects.select_for_update()
        .filter(account_id=account_id, instrument=instrument, status=PositionStatus.OPEN, leader_position__isnull=True)
        .first()
    )


@transaction.atomic
def margin_market_order(
    *, account_id: int, instrument: Instrument, side: str, quantity: Decimal, leverage: int
) -> list[Executed]:
    """Net a market order against the account's own position (one-way mode)."""
    if side not in (trade_math.BUY, trade_math.SELL):
        raise DomainError("INVALID_SIDE", "The side must be buy or sell.", field="side")
    if not 1 <= leverage <= instrument.max_leverage:
        raise DomainError(
            "INVALID_LEVERAGE", f"The leverage must be between 1 and {instrument.max_leverage}.", field="leverage"
        )
    account = ledger.lock_accounts([account_id])[account_id]
    price = trade_math.fill_price(instrument.mark_price, side, settings.PAPER_SPREAD_BPS, instrument.price_tick)
    validate_quantity(instrument, quantity, price)
    position = _lock_open_position(account_id, instrument)
    steps = trade_math.plan_order(
        position.side if position else None, position.quantity if position else ZERO, side, quantity
    )

    free = account.free
    fills: list[Fill] = []
    befores: list[Decimal] = []
    for step in steps:
        if step.action in (trade_math.REDUCE, trade_math.CLOSE):
            result = trade_math.close_part(
                side=position.side,
                quantity=position.quantity,
                closed=step.quantity,
                entry=position.entry_price,
                margin=position.margin,
                exit_price=price,
            )
            free += result.released_margin + result.settled
            fills.append(
                Fill(account_id, instrument, side, step.action, step.quantity, price, position.leverage, position)
            )
            befores.append(position.quantity)
        else:
            lev = position.leverage if step.action == trade_math.INCREASE else leverage
            margin = trade_math.margin_for(step.quantity, price, lev)
            if margin > free:
                raise InsufficientFunds(
                    f"This order needs {margin} of free margin; {free} is available.", field="quantity"
                )
            free -= margin
            existing = position if step.action == trade_math.INCREASE else None
            fills.append(Fill(account_id, instrument, side, step.action, step.quantity, price, lev, existing))
            befores.append(position.quantity if existing else ZERO)
    apply_fills(fills)
    return [Executed(f.action, f, before) for f, before in zip(fills, befores, strict=True)]


@transaction.atomic
def spot_market_order(*, account_id: int, instrument: Instrument, side: str, quantity: Decimal) -> Executed:
    if instrument.product != Product.SPOT:
        raise DomainError("WRONG_PRODUCT", f"{instrument.symbol} is not a spot instrument.", field="symbol")
    if side not in (trade_math.BUY, trade_math.SELL):
        raise DomainError("INVALID_SIDE", "The side must be buy or sell.", field="side")
    account = ledger.lock_accounts([account_id])[account_id]
    price = trade_math.fill_price(instrument.mark_price, side, settings.PAPER_SPREAD_BPS, instrument.price_tick)
    validate_quantity(instrument, quantity, price)
    cross = instrument.quote != settings.PRIMARY_CURRENCY  # e.g. ETH/BTC: paid in BTC held
    assets = [instrument.base, instrument.quote] if cross else [instrument.base]
    held = {
        h.asset: h
        for h in Holding.objects.select_for_update().filter(account_id=account_id, asset__in=assets).order_by("asset")
    }
    holding, quote_holding = held.get(instrument.base), held.get(instrument.quote)
    before = holding.quantity if holding else ZERO
    if side == trade_math.BUY:
        cost = q8_up(quantity * price)
        if cross:
            available = quote_holding.quantity if quote_holding else ZERO
            if cost > available:
                raise DomainError(
                    "INSUFFICIENT_HOLDING",
                    f"This order costs {cost.normalize()} {instrument.quote}; you hold {available.normalize()}.",
                    field="quantity",
                )
        elif cost > account.free:
            raise InsufficientFunds(f"This order costs {cost}; {account.free} is available.", field="quantity")
        action = SPOT_BUY
    else:
        if quantity > before:
            raise DomainError(
                "INSUFFICIENT_HOLDING", f"You hold {before.normalize()} {instrument.base}.", field="quantity"
            )
        action = SPOT_SELL
    fill = Fill(account_id, instrument, side, action, quantity, price, holding=holding, quote_holding=quote_holding)
    apply_fills([fill])
    return Executed(fill.action, fill, before)


@transaction.atomic
def position_close(*, position_id: int, account_id: int, quantity: Decimal | None = None) -> Executed:
    """Close all of a position, or exactly ``quantity`` of it, at market."""
    position = (
        Position.objects.select_for_update(of=("self",))
        .select_related("instrument")
        .filter(pk=position_id, account_id=account_id)
        .first()
    )
    if position is None:
        raise DomainError("NOT_FOUND", "The position does not exist or is not yours.", status=404)
    if position.status != PositionStatus.OPEN:
        raise DomainError("POSITION_CLOSED", "The position is already closed.", status=409)
    instrument = position.instrument
    ledger.lock_accounts([account_id])
    side = trade_math.closing_side(position.side)
    price = trade_math.fill_price(instrument.mark_price, side, settings.PAPER_SPREAD_BPS, instrument.price_tick)
    if quantity is None or quantity == position.quantity:
        closed, action = position.quantity, trade_math.CLOSE
    else:
        if quantity <= 0 or quantity > position.quantity:
            raise DomainError(
                "INVALID_QUANTITY",
                f"The quantity must be above 0 and at most {position.quantity.normalize()}.",
                field="quantity",
            )
        if quantity % instrument.qty_step:
            raise DomainError(
                "INVALID_QUANTITY",
                f"The quantity must be a multiple of {instrument.qty_step.normalize()}.",
                field="quantity",
            )
        closed, action = quantity, trade_math.REDUCE
    before = position.quantity
    fill = Fill(
        account_id,
        instrument,
        side,
        action,
        closed,
        price,
        position.leverage,
        position,
        subscription_id=position.subscription_id,
    )
    apply_fills([fill])
    return Executed(action, fill, before)


# --- resting limit orders ------------------------------------------------------


def validate_price(instrument: Instrument, price: Decimal | None, *, field: str = "price") -> Decimal:
    if price is None or not price.is_finite() or price <= 0:
        raise DomainError("INVALID_PRICE", "The price must be greater than zero.", field=field)
    if price % instrument.price_tick:
        raise DomainError(
            "PRICE_NOT_ON_TICK", f"The price must be a multiple of {instrument.price_tick.normalize()}.", field=field
        )
    return price.quantize(Q8)  # exact: a tick has at most 8 places


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


@transaction.atomic
def limit_order_place(
    *, account_id: int, instrument: Instrument, side: str, quantity: Decimal, price: Decimal, leverage: int
) -> Order:
    """Rest a margin limit order, its margin reserved from the free balance."""
    if instrument.product != Product.MARGIN:
        raise DomainError("SPOT_LIMIT_NOT_SUPPORTED", "Limit orders are for margin instruments.", field="type")
    if side not in (trade_math.BUY, trade_math.SELL):
        raise DomainError("INVALID_SIDE", "The side must be buy or sell.", field="side")
    if not 1 <= leverage <= instrument.max_leverage:
        raise DomainError(
            "INVALID_LEVERAGE", f"The leverage must be between 1 and {instrument.max_leverage}.", field="leverage"
        )
    price = validate_price(instrument, price)
    validate_quantity(instrument, quantity, price)
    _refuse_marketable(instrument, side, price)
    account = ledger.lock_accounts([account_id])[account_id]
    # Reserved as if the order opened a position: enough for any netting it
    # fills into (a reduce or close frees margin, a flip opens less).
    reserved = trade_math.margin_for(quantity, price, leverage)
    if reserved > account.free:
        raise InsufficientFunds(
            f"This order reserves {reserved} of margin; {account.free} is available.", field="quantity"
        )
    order = Order.objects.create(
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
    ledger.apply_transfers([], locked_deltas={account_id: reserved})
    return order


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
    reserved = trade_math.margin_for(order.quantity, price, order.leverage)
    delta = reserved - order.reserved
    free = Account.objects.get(pk=account_id).free
    if delta > free:
        raise InsufficientFunds(f"The new price reserves {delta} more margin; {free} is available.", field="price")
    old_price = order.price
    order.price, order.reserved = price, reserved
    order.save(update_fields=["price", "reserved"])
    if delta:
        ledger.apply_transfers([], locked_deltas={account_id: delta})
    return order, old_price


@transaction.atomic
def limit_order_cancel(*, order_id: int, account_id: int, mirror: bool = False) -> Order:
    ledger.lock_accounts([account_id])
    order = _lock_resting_order(order_id, account_id, mirror=mirror)
    released = order.reserved
    order.status, order.reserved = OrderStatus.CANCELLED, ZERO
    order.save(update_fields=["status", "reserved"])
    if released:
        ledger.apply_transfers([], locked_deltas={account_id: -released})
    return order


# --- edits of an open position -------------------------------------------------


def _lock_own_open_position(position_id: int, account_id: int) -> Position:
    position = (
        Position.objects.select_for_update(of=("self",))
        .select_related("instrument")
        .filter(pk=position_id, account_id=account_id)
        .first()
    )
    if position is None:
        raise DomainError("NOT_FOUND", "The position does not exist or is not yours.", status=404)
    if position.status != PositionStatus.OPEN:
        raise DomainError("POSITION_CLOSED", "The position is already closed.", status=409)
    return position


def validate_tpsl(
    position: Position, take_profit: Decimal | None, stop_loss: Decimal | None
) -> tuple[Decimal | None, Decimal | None]:
    take_profit, stop_loss = (
        validate_price(position.instrument, value, field=name) if value is not None else None
        for name, value in (("take_profit", take_profit), ("stop_loss", stop_loss))
    )
    wrong = trade_math.tpsl_error(position.side, position.entry_price, take_profit, stop_loss)
    if wrong:
        above = (wrong == "take_profit") == (position.side == trade_math.LONG)
        raise DomainError(
            "TPSL_WRONG_SIDE",
            f"For a {position.side} position the {wrong.replace('_', '-')} must be "
            f"{'above' if above else 'below'} the entry price {position.entry_price.normalize()}.",
            field=wrong,
        )
    return take_profit, stop_loss


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()  # a TP or SL left as it is (None clears it)


@transaction.atomic
def position_tpsl_set(
    *,
    position_id: int,
    account_id: int,
    take_profit: Decimal | _Unchanged | None = UNCHANGED,
    stop_loss: Decimal | _Unchanged | None = UNCHANGED,
) -> Position:
    """Set (or clear, with None) the position's one take-profit and one
    stop-loss; the pair is validated as it will be after the change."""
    position = _lock_own_open_position(position_id, account_id)
    if take_profit is UNCHANGED:
        take_profit = position.take_profit
    if stop_loss is UNCHANGED:
        stop_loss = position.stop_loss
    position.take_profit, position.stop_loss = validate_tpsl(position, take_profit, stop_loss)
    position.save(update_fields=["take_profit", "stop_loss"])
    return position


@transaction.atomic
def position_leverage_set(*, position_id: int, account_id: int, leverage: int) -> tuple[Position, int]:
    """Change an open position's leverage: its isolated margin is recomputed
    from its size and entry, the difference locked or released. Returns the
    position and its old leverage."""
    ledger.lock_accounts([account_id])
    position = _lock_own_open_position(position_id, account_id)
    instrument = position.instrument
    if not 1 <= leverage <= instrument.max_leverage:
        raise DomainError(
            "INVALID_LEVERAGE", f"The leverage must be between 1 and {instrument.max_leverage}.", field="leverage"
        )
    if leverage == position.leverage:
        raise DomainError("LEVERAGE_UNCHANGED", "The position already has this leverage.", field="leverage")
    margin = trade_math.margin_for(position.quantity, position.entry_price, leverage)
    loss = trade_math.unrealized_loss(position.side, position.quantity, position.entry_price, instrument.mark_price)
    if loss >= margin:
        raise DomainError(
            "LEVERAGE_WOULD_LIQUIDATE",
            "At this leverage the position's loss would reach its margin.",
            field="leverage",
        )
    delta = margin - position.margin
    free = Account.objects.get(pk=account_id).free
    if delta > free:
        raise InsufficientFunds(f"This leverage needs {delta} more margin; {free} is available.", field="leverage")
    old = position.leverage
    position.leverage, position.margin = leverage, margin
    position.save(update_fields=["leverage", "margin"])
    if delta:
        ledger.apply_transfers([], locked_deltas={account_id: delta})
    return position, old
