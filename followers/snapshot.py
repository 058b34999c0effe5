"""One copy (subscription) at the current marks: what the subscriptions API
shows and what the stream's ``copies`` topic pushes. Pure: no Django.

The stream keeps a ``CopyInputs`` per subscription in memory and calls
``copy_snapshot`` again on each tick with the new margin and spot figures;
the REST API builds the same inputs set-based for a page
(``followers.selectors.copy_snapshots``)."""

from dataclasses import dataclass, replace
from decimal import Decimal

from copytrading.valuation import margin_level_pct, q8

ZERO = Decimal(0)
HUNDRED = Decimal(100)
PCT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class CopyInputs:
    """What a copy's snapshot is computed from (exact, unrounded)."""

    subscription_id: int
    status: str
    pause_reason: str
    balance: Decimal  # the copy wallet's cash (margin in use included)
    used_margin: Decimal  # Σ margin of the open positions
    margin_unrealized: Decimal  # Σ of the open positions at mark, each loss capped at its margin
    holdings_value: Decimal  # spot holdings at mark (at cost without a priced pair)
    spot_unrealized: Decimal  # spot holdings at mark less their cost basis (0 without a priced pair)
    realized_today: Decimal  # realized PnL since 00:00 UTC, as the watchdog counts it (negative: a loss)
    funded: Decimal  # everything paid in by the owner
    withdrawn: Decimal  # everything paid back to the owner
    daily_loss_limit_realized: Decimal | None
    daily_loss_limit_unrealized: Decimal | None

    def at_marks(self, *, margin_unrealized: Decimal, holdings_value: Decimal, spot_unrealized: Decimal):
        """The same copy after a price move (the stream's tick)."""
        return replace(
            self, margin_unrealized=margin_unrealized, holdings_value=holdings_value, spot_unrealized=spot_unrealized
        )


@dataclass(frozen=True, slots=True)
class CopySnapshot:
    subscription_id: int
    status: str
    pause_reason: str
    balance: Decimal
    equity: Decimal  # balance + margin unrealized + spot holdings at mark
    unrealized_pnl: Decimal  # margin and spot
    realized_pnl: Decimal  # since the subscription began, net of fees: equity at cost + withdrawn - funded
    total_pnl: Decimal  # realized + unrealized = equity + withdrawn - funded
    roi_pct: Decimal  # total_pnl / funded, percent, 2 dp (0 with nothing funded)
    margin_level_pct: Decimal | None  # equity / used margin x 100; None without open positions
    realized_loss_today: Decimal  # the day's realized loss (0 after a profitable day)
    unrealized_loss: Decimal  # the open loss, margin and spot (0 when in profit)
    daily_loss_limit_realized: Decimal | None
    daily_loss_headroom_realized: Decimal | None  # loss still allowed today before the watchdog pauses
    daily_loss_limit_unrealized: Decimal | None
    daily_loss_headroom_unrealized: Decimal | None  # open loss still allowed before the watchdog closes


def _headroom(limit: Decimal | None, loss: Decimal) -> Decimal | None:
    # The watchdog acts when the loss reaches the limit: no room is left at 0.
    return None if limit is None else q8(max(limit - loss, ZERO))


def copy_snapshot(inputs: CopyInputs) -> CopySnapshot:
    """Every figure at 8 dp (percentages at 2 dp; the margin level at 8, as
    the watchdog measures it)."""
    unrealized = inputs.margin_unrealized + inputs.spot_unrealized
    equity = inputs.balance + inputs.margin_unrealized + inputs.holdings_value
    total = equity + inputs.withdrawn - inputs.funded
    realized = total - unrealized
    roi = (total * HUNDRED / inputs.funded).quantize(PCT) if inputs.funded > 0 else ZERO.quantize(PCT)
    realized_loss = max(-inputs.realized_today, ZERO)
    unrealized_loss = max(-unrealized, ZERO)
    return CopySnapshot(
        subscription_id=inputs.subscription_id,
        status=inputs.status,
        pause_reason=inputs.pause_reason,
        balance=q8(inputs.balance),
        equity=q8(equity),
        unrealized_pnl=q8(unrealized),
        realized_pnl=q8(realized),
        total_pnl=q8(total),
        roi_pct=roi,
        margin_level_pct=margin_level_pct(equity, inputs.used_margin),
        realized_loss_today=q8(realized_loss),
        unrealized_loss=q8(unrealized_loss),
        daily_loss_limit_realized=inputs.daily_loss_limit_realized,
        daily_loss_headroom_realized=_headroom(inputs.daily_loss_limit_realized, realized_loss),
        daily_loss_limit_unrealized=inputs.daily_loss_limit_unrealized,
        daily_loss_headroom_unrealized=_headroom(inputs.daily_loss_limit_unrealized, unrealized_loss),
    )
