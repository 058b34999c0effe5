"""Risk rules: the watchdog's rules over one subscription's snapshot, and the
pre-trade checks of the propagation engine. Pure: no Django.

Every comparison is exact: ratios are compared by cross-multiplying
(``equity x 100 <= level x margin``), never through a rounded quotient, so a
value exactly at its threshold always breaches and one a unit of 1e-8 on the
safe side never does. The quotients in ``Breach.measured`` are for people.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, localcontext

from copytrading.valuation import margin_level_pct

# Rules (the values of risk.models.Rule) and actions (risk.models.Action).
DAILY_LOSS_REALIZED = "daily_loss_realized"
DAILY_LOSS_UNREALIZED = "daily_loss_unrealized"
MARGIN_CALL = "margin_call"
MAX_DRAWDOWN = "max_drawdown"
PAUSE, PAUSE_AND_CLOSE, RESUME = "pause", "pause_and_close", "resume"

# When several rules breach at once, the first of these names the pause: the
# one that also closes mirrors, then the ones a midnight reset must not lift,
# the daily realized loss last (only a pause for it alone is lifted at 00:00).
PRECEDENCE = (DAILY_LOSS_UNREALIZED, MAX_DRAWDOWN, MARGIN_CALL, DAILY_LOSS_REALIZED)

DEFAULT_MARGIN_CALL_LEVEL_PCT = Decimal("110")
HUNDRED = Decimal(100)
ZERO = Decimal(0)
_Q8 = Decimal("0.00000001")

# Position values carry up to 16 decimal places (price x quantity at 8 each);
# with balances in the billions that is beyond the default 28 digits.
_PRECISION = 60


def _q8(value: Decimal) -> Decimal:
    return value.quantize(_Q8, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Limits:
    """A subscription's watchdog limits; None switches a rule off."""

    daily_loss_realized: Decimal | None = None  # quote currency
    daily_loss_unrealized: Decimal | None = None  # quote currency
    margin_call_level_pct: Decimal | None = DEFAULT_MARGIN_CALL_LEVEL_PCT
    max_drawdown_pct: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One copy wallet as the watchdog sees it."""

    equity: Decimal  # balance + unrealized PnL of open positions + spot holdings at mark
    used_margin: Decimal  # Σ margin of the open positions
    # Σ of the open positions at mark, plus the spot holdings at mark less
    # their cost basis (negative: a loss)
    unrealized_pnl: Decimal
    # realized PnL since 00:00 UTC, margin closes and spot sells (negative: a loss)
    realized_today: Decimal
    peak_equity: Decimal | None = None  # from ``next_peak``: never below ``equity``


@dataclass(frozen=True, slots=True)
class Breach:
    rule: str
    measured: Decimal  # the loss amount, margin level % or drawdown %, 8 dp
    threshold: Decimal
    action: str


def drawdown_pct(peak: Decimal | None, equity: Decimal) -> Decimal:
    """How far ``equity`` is below ``peak``, in percent of the peak (0 at or above it)."""
    if peak is None or peak <= 0 or equity >= peak:
        return ZERO
    with localcontext(prec=_PRECISION):
        return _q8((peak - equity) * HUNDRED / peak)


def next_peak(previous: Decimal | None, previous_flows: Decimal, flows: Decimal, equity: Decimal) -> Decimal:
    """The peak equity after this observation.

    ``flows`` is the net capital paid into the copy wallet (deposits minus
    withdrawals); the previous peak moves by what was paid in or taken out
    since, so topping up is not a gain and withdrawing is not a drawdown.
    Stored at 8 decimal places, rounded up: the peak is never below a
    high it stands for."""
    with localcontext(prec=_PRECISION):
        high = equity if previous is None else max(previous + (flows - previous_flows), equity)
        return high.quantize(_Q8, rounding=ROUND_CEILING)


def evaluate(limits: Limits, snap: Snapshot) -> list[Breach]:
    """Every rule the snapshot breaches, in ``PRECEDENCE`` order."""
    found: dict[str, Breach] = {}
    with localcontext(prec=_PRECISION):
        limit = limits.daily_loss_unrealized
        if limit is not None and -snap.unrealized_pnl >= limit:
            found[DAILY_LOSS_UNREALIZED] = Breach(
                DAILY_LOSS_UNREALIZED, _q8(-snap.unrealized_pnl), limit, PAUSE_AND_CLOSE
            )
        limit = limits.max_drawdown_pct
        peak = snap.peak_equity
        if limit is not None and peak is not None and peak > 0 and (peak - snap.equity) * HUNDRED >= limit * peak:
            found[MAX_DRAWDOWN] = Breach(MAX_DRAWDOWN, drawdown_pct(peak, snap.equity), limit, PAUSE)
        limit = limits.margin_call_level_pct
        if limit is not None and snap.used_margin > 0 and snap.equity * HUNDRED <= limit * snap.used_margin:
            found[MARGIN_CALL] = Breach(MARGIN_CALL, margin_level_pct(snap.equity, snap.used_margin), limit, PAUSE)
        limit = limits.daily_loss_realized
        if limit is not None and -snap.realized_today >= limit:
            found[DAILY_LOSS_REALIZED] = Breach(DAILY_LOSS_REALIZED, _q8(-snap.realized_today), limit, PAUSE)
    return [found[rule] for rule in PRECEDENCE if rule in found]


# --- pre-trade checks (called by the propagation engine for every copy) --------

MAX_OPEN_POSITIONS_REACHED = "RISK_MAX_OPEN_POSITIONS"
MAX_EXPOSURE_EXCEEDED = "RISK_MAX_EXPOSURE"


@dataclass(frozen=True, slots=True)
class PreTradeLimits:
    max_open_positions: int | None = None
    max_exposure_pct: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Book:
    """The copy wallet before the copy: its open positions and their value."""

    open_positions: int  # margin positions plus spot assets held above dust
    exposure: Decimal  # Σ quantity x mark of the open positions and the spot holdings
    equity: Decimal


def check_open_positions(limit: int | None, open_positions: int, *, opens_position: bool) -> str | None:
    """A copy that opens a new position needs room for one more; adding to an
    existing position never changes the count."""
    if limit is None or not opens_position:
        return None
    return MAX_OPEN_POSITIONS_REACHED if open_positions >= limit else None


def check_exposure(limit_pct: Decimal | None, exposure: Decimal, equity: Decimal, notional: Decimal) -> str | None:
    """Total notional after the copy must stay within ``limit_pct`` % of the
    copy equity (exactly at the limit is allowed)."""
    if limit_pct is None or notional <= 0:
        return None
    with localcontext(prec=_PRECISION):
        over = (exposure + notional) * HUNDRED > limit_pct * equity
    return MAX_EXPOSURE_EXCEEDED if over else None


def pretrade_check(limits: PreTradeLimits, book: Book, *, opens_position: bool, notional: Decimal) -> str | None:
    """None if the copy may go ahead, else the reason code to reject it with.

    Call it for copies that open or increase a position (``opens_position``
    tells which), with ``notional`` = the copy's quantity x its fill price.
    Reducing and closing copies lower the risk and are never checked."""
    return check_open_positions(
        limits.max_open_positions, book.open_positions, opens_position=opens_position
    ) or check_exposure(limits.max_exposure_pct, book.exposure, book.equity, notional)
