"""Edits of an open position of an account's own book: its take-profit and
stop-loss (triggered by copytrading.matching), and its leverage."""

from decimal import Decimal

from django.db import transaction

from copytrading import ledger, trade_math
from copytrading.errors import DomainError
from copytrading.models import Position
from copytrading.trading.common import lock_own_open_position, margin_delta_lock, validate_leverage, validate_price


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
    position = lock_own_open_position(position_id, account_id)
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
    position = lock_own_open_position(position_id, account_id)
    instrument = position.instrument
    validate_leverage(instrument, leverage)
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
    margin_delta_lock(account_id, margin - position.margin, needs="This leverage needs", field="leverage")
    old = position.leverage
    position.leverage, position.margin = leverage, margin
    position.save(update_fields=["leverage", "margin"])
    return position, old
