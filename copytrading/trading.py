"""Single-account trading on the paper venue: a leader's own orders and a
follower's manual close. Mirrors go through the propagation engine instead."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from copytrading import ledger, trade_math
from copytrading.errors import DomainError, InsufficientFunds
from copytrading.models import Holding, Instrument, Position, PositionStatus, Product
from copytrading.money import ZERO, q8_up
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
    holding = Holding.objects.select_for_update().filter(account_id=account_id, asset=instrument.base).first()
    before = holding.quantity if holding else ZERO
    if side == trade_math.BUY:
        cost = q8_up(quantity * price)
        if cost > account.free:
            raise InsufficientFunds(f"This order costs {cost}; {account.free} is available.", field="quantity")
        fill = Fill(account_id, instrument, side, SPOT_BUY, quantity, price, holding=holding)
    else:
        if quantity > before:
            raise DomainError(
                "INSUFFICIENT_HOLDING", f"You hold {before.normalize()} {instrument.base}.", field="quantity"
            )
        fill = Fill(account_id, instrument, side, SPOT_SELL, quantity, price, holding=holding)
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
