"""Market orders of an account's own book: margin orders netted against its
position (one-way mode), spot buys and sells, and closing a position."""

from decimal import Decimal

from django.conf import settings
from django.db import transaction

from copytrading import ledger, trade_math
from copytrading.errors import DomainError, InsufficientFunds
from copytrading.models import Holding, Instrument, Position, PositionStatus, Product
from copytrading.money import ZERO, q8_up
from copytrading.trading.common import (
    Executed,
    closing_quantity,
    lock_own_open_position,
    validate_leverage,
    validate_quantity,
    validate_side,
)
from copytrading.venue import SPOT_BUY, SPOT_SELL, Fill, apply_fills


def _lock_open_position(account_id: int, instrument: Instrument) -> Position | None:
    return (
        Position.objects.select_for_update()
        .filter(account_id=account_id, instrument=instrument, status=PositionStatus.OPEN, leader_position__isnull=True)
        .first()
    )


def _market_price(instrument: Instrument, side: str) -> Decimal:
    return trade_math.fill_price(instrument.mark_price, side, settings.PAPER_SPREAD_BPS, instrument.price_tick)


@transaction.atomic
def margin_market_order(
    *, account_id: int, instrument: Instrument, side: str, quantity: Decimal, leverage: int
) -> list[Executed]:
    """Net a market order against the account's own position (one-way mode)."""
    validate_side(side)
    validate_leverage(instrument, leverage)
    account = ledger.lock_accounts([account_id])[account_id]
    price = _market_price(instrument, side)
    validate_quantity(instrument, quantity, price)
    return _margin_fill(account, instrument, side, quantity, price, leverage, check_funds=True)


@transaction.atomic
def margin_external_fill(
    *, account_id: int, instrument: Instrument, side: str, quantity: Decimal, price: Decimal, leverage: int
) -> list[Executed]:
    """A fill that already happened elsewhere (the leader's trade on their
    exchange account), replayed into the account's book at the exchange's
    price and quantity with the same netting as a market order. The
    exchange accepted it, so its size and margin are not refused here (its
    lot and margin rules were the exchange's); the ledger's constraints
    still hold (margin never above the balance)."""
    validate_side(side)
    if not quantity.is_finite() or quantity <= 0 or not price.is_finite() or price <= 0:
        raise DomainError("INVALID_FILL", "An external fill needs a positive quantity and price.")
    account = ledger.lock_accounts([account_id])[account_id]
    leverage = min(max(leverage, 1), max(instrument.max_leverage, 1))
    return _margin_fill(account, instrument, side, quantity, price, leverage, check_funds=False)


def _margin_fill(
    account, instrument: Instrument, side: str, quantity: Decimal, price: Decimal, leverage: int, *, check_funds: bool
) -> list[Executed]:
    account_id = account.pk
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
            if margin > free and check_funds:
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
    validate_side(side)
    account = ledger.lock_accounts([account_id])[account_id]
    price = _market_price(instrument, side)
    validate_quantity(instrument, quantity, price)
    return _spot_fill(account, instrument, side, quantity, price, external=False)


@transaction.atomic
def spot_external_fill(
    *, account_id: int, instrument: Instrument, side: str, quantity: Decimal, price: Decimal
) -> Executed:
    """A spot trade that already happened elsewhere (the leader's, on their
    exchange account), replayed at its price and quantity. A buy in the
    primary currency is not refused for cash (the exchange took the money);
    a sell sells at most what this book holds (an asset held on the exchange
    before the account was bound is not the book's), none: refused."""
    if instrument.product != Product.SPOT:
        raise DomainError("WRONG_PRODUCT", f"{instrument.symbol} is not a spot instrument.", field="symbol")
    validate_side(side)
    if not quantity.is_finite() or quantity <= 0 or not price.is_finite() or price <= 0:
        raise DomainError("INVALID_FILL", "An external fill needs a positive quantity and price.")
    account = ledger.lock_accounts([account_id])[account_id]
    return _spot_fill(account, instrument, side, quantity, price, external=True)


def _spot_fill(account, instrument: Instrument, side: str, quantity: Decimal, price: Decimal, *, external: bool):
    account_id = account.pk
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
            available = quote_holding.free if quote_holding else ZERO
            if cost > available:
                raise DomainError(
                    "INSUFFICIENT_HOLDING",
                    f"This order costs {cost.normalize()} {instrument.quote}; "
                    f"{available.normalize()} is free to use (resting orders hold the rest).",
                    field="quantity",
                )
        elif cost > account.free and not external:
            raise InsufficientFunds(f"This order costs {cost}; {account.free} is available.", field="quantity")
        action = SPOT_BUY
    else:
        available = holding.free if holding else ZERO
        if external and ZERO < available < quantity:
            quantity = available
        if quantity > available:
            raise DomainError(
                "INSUFFICIENT_HOLDING",
                f"You hold {before.normalize()} {instrument.base}, of which {available.normalize()} is free to sell "
                "(resting sell orders hold the rest).",
                field="quantity",
            )
        action = SPOT_SELL
    fill = Fill(account_id, instrument, side, action, quantity, price, holding=holding, quote_holding=quote_holding)
    apply_fills([fill])
    return Executed(fill.action, fill, before)


@transaction.atomic
def position_close(*, position_id: int, account_id: int, quantity: Decimal | None = None) -> Executed:
    """Close all of a position, or exactly ``quantity`` of it, at market."""
    position = lock_own_open_position(position_id, account_id)
    instrument = position.instrument
    ledger.lock_accounts([account_id])
    side = trade_math.closing_side(position.side)
    price = _market_price(instrument, side)
    closed, action = closing_quantity(position, quantity)
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
