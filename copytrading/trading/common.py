"""What the trading services share: the result of a venue step, input
validators (each raising a DomainError with a stable code) and row locks."""

from dataclasses import dataclass
from decimal import Decimal

from copytrading import ledger, trade_math
from copytrading.errors import DomainError, InsufficientFunds
from copytrading.models import Account, Instrument, Position, PositionStatus
from copytrading.money import Q8
from copytrading.venue import Fill


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


def validate_side(side: str) -> None:
    if side not in (trade_math.BUY, trade_math.SELL):
        raise DomainError("INVALID_SIDE", "The side must be buy or sell.", field="side")


def validate_leverage(instrument: Instrument, leverage: int) -> None:
    if not 1 <= leverage <= instrument.max_leverage:
        raise DomainError(
            "INVALID_LEVERAGE", f"The leverage must be between 1 and {instrument.max_leverage}.", field="leverage"
        )


def validate_qty_step(instrument: Instrument, quantity: Decimal) -> None:
    if quantity % instrument.qty_step:
        raise DomainError(
            "INVALID_QUANTITY",
            f"The quantity must be a multiple of {instrument.qty_step.normalize()}.",
            field="quantity",
        )


def validate_quantity(instrument: Instrument, quantity: Decimal, price: Decimal) -> None:
    if quantity <= 0:
        raise DomainError("INVALID_QUANTITY", "The quantity must be greater than zero.", field="quantity")
    validate_qty_step(instrument, quantity)
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


def validate_price(instrument: Instrument, price: Decimal | None, *, field: str = "price") -> Decimal:
    if price is None or not price.is_finite() or price <= 0:
        raise DomainError("INVALID_PRICE", "The price must be greater than zero.", field=field)
    if price % instrument.price_tick:
        raise DomainError(
            "PRICE_NOT_ON_TICK", f"The price must be a multiple of {instrument.price_tick.normalize()}.", field=field
        )
    return price.quantize(Q8)  # exact: a tick has at most 8 places


def lock_own_open_position(position_id: int, account_id: int) -> Position:
    """An open position of the account under its row lock (404 if it is not
    the account's, 409 if it is already closed)."""
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


def margin_delta_lock(account_id: int, delta: Decimal, *, needs: str, field: str, of: str = "margin") -> None:
    """Lock (or, negative, release) the extra margin (``of``: or cash) an
    order or an edit of a resting order or an open position needs, refused
    if more than the account has free. The account is already row-locked.
    ``needs`` starts the message, e.g. "This leverage needs"."""
    free = Account.objects.get(pk=account_id).free
    if delta > free:
        raise InsufficientFunds(f"{needs} {delta} more {of}; {free} is available.", field=field)
    if delta:
        ledger.apply_transfers([], locked_deltas={account_id: delta})


def closing_quantity(position: Position, quantity: Decimal | None) -> tuple[Decimal, str]:
    """What closing ``quantity`` of ``position`` (None: all of it) closes, and
    as which action (CLOSE or REDUCE); a quantity off the position or off the
    instrument's step is refused."""
    if quantity is None or quantity == position.quantity:
        return position.quantity, trade_math.CLOSE
    if quantity <= 0 or quantity > position.quantity:
        raise DomainError(
            "INVALID_QUANTITY",
            f"The quantity must be above 0 and at most {position.quantity.normalize()}.",
            field="quantity",
        )
    validate_qty_step(position.instrument, quantity)
    return quantity, trade_math.REDUCE
