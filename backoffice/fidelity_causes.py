"""The copy-fidelity report's arithmetic and its causes (issue #18 §3). Pure: no Django.

``backoffice.fidelity`` runs a seeded month on the real engine and reads what
it recorded (execution rows, fee accruals, risk events) into the plain facts
below; this module decides, for each follower, which of its execution rows
diverge from the ideal copy and why, and reduces the gaps to the report's
figures. A divergence whose cause nothing recorded is ``unexplained``: the
report's bug detector.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from copytrading.decisions import model as d
from copytrading.money import ZERO, floor_to_step
from copytrading.sizing import BELOW_MIN_NOTIONAL, BELOW_MIN_QUANTITY, SizingModel

PP = Decimal("0.0001")  # the report's places for percentage points
HUNDRED = Decimal(100)
# A follower's gap above this, with no row of its own to explain it, is a
# "residual" divergence (the gap is measured, not assumed: 0.005 pp of 100,000
# is 5 USDT, far above any rounding of the ledger's 8 places).
RESIDUAL_TOLERANCE_PP = Decimal("0.005")
# The goal for progressive 1.0 with ample capital.
MAX_GAP_GOAL_PP = Decimal("0.25")

# Causes (the table's words).
STEP_ROUNDING = "step_rounding"
MAXIMUM_QUANTITY = "maximum_quantity"
MINIMUM_QUANTITY = "minimum_quantity"
MINIMUM_NOTIONAL = "minimum_notional"
SLIPPAGE = "slippage"
RISK_ACTION = "risk_action"
CAPITAL = "capital"
FEE = "fee"
COPY_SETTINGS = "copy_settings"
TRIGGER = "trigger"  # the mirror closed on the same liquidation/TP/SL as the leader
FOLLOW_UP = "follow_up"  # nothing to reduce or sell: an earlier divergence on the symbol
UNEXPLAINED = "unexplained"
RESIDUAL = "residual"  # the gap with no row to explain it: counted as unexplained

OPENING_KINDS = (d.POSITION_OPEN, d.SPOT_BUY)
REDUCING_KINDS = (d.POSITION_REDUCE, d.POSITION_CLOSE, d.SPOT_SELL)
NOTHING_TO_REDUCE = (d.NO_MIRROR_POSITION, d.NO_HOLDING_TO_SELL)
CAPITAL_CODES = (d.INSUFFICIENT_MARGIN, d.INSUFFICIENT_FUNDS)


@dataclass(frozen=True)
class RowFacts:
    """One execution row of a follower, with what the report needs of its
    event and instrument."""

    seq: int
    kind: str
    symbol: str
    outcome: str
    reason_code: str = ""
    leader_quantity: Decimal | None = None
    leader_price: Decimal | None = None
    follower_quantity: Decimal | None = None
    follower_price: Decimal | None = None
    attempted_quantity: Decimal | None = None
    quantity_step: Decimal | None = None
    min_quantity: Decimal | None = None
    min_notional: Decimal | None = None
    max_quantity: Decimal | None = None
    reason_detail: str = ""
    trigger: str = ""  # the leader event's trigger (liquidation, take_profit, stop_loss), if any
    # The follower's mirror of the leader's position was closed by the venue's
    # matching (the same mark's trigger), not by this row.
    mirror_triggered: bool = False


@dataclass(frozen=True)
class FollowerFacts:
    subscription_id: int
    group: str
    sizing_model: str
    multiplier: Decimal | None
    rows: Sequence[RowFacts]
    fee: Decimal = ZERO  # the profit share it paid (Σ FeeAccrual.fee)
    gap_pp: Decimal | None = None  # None: no scale (fixed notional)
    risk_paused: bool = False  # a watchdog RiskEvent paused it
    risk_closed: bool = False  # ... and closed its mirrors


@dataclass(frozen=True)
class Divergence:
    subscription_id: int
    group: str
    seq: int | None
    cause: str
    detail: str

    @property
    def unexplained(self) -> bool:
        return self.cause in (UNEXPLAINED, RESIDUAL)


def num(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return format(value.normalize(), "f") if value else "0"


def ideal_quantity(row: RowFacts, follower: FollowerFacts) -> Decimal | None:
    """The quantity a perfect copy would have traded (None: nothing to compare,
    e.g. a close of all): progressive opens and buys are the leader's
    quantity x the multiplier, recomputed here; every other size is the one
    the engine recorded before rounding (``attempted_quantity``: the
    adaptive/fixed model's size, whose inputs are not on the row, or the exact
    share of what the copy held)."""
    if (
        row.kind in OPENING_KINDS
        and follower.sizing_model == SizingModel.PROGRESSIVE
        and row.leader_quantity is not None
        and follower.multiplier is not None
    ):
        return row.leader_quantity * follower.multiplier
    return row.attempted_quantity


def _stepped(ideal: Decimal, got: Decimal, step: Decimal | None, *, recorded: bool = False) -> bool:
    """``got`` is ``ideal`` floored to the step. A ``recorded`` ideal is the
    row's 8 places of an exact share, which may have rounded up onto a step:
    one unit in the 8th place below it floors too."""
    if step is None or step <= 0:
        return False
    if got == floor_to_step(ideal, step):
        return True
    return recorded and got == floor_to_step(ideal - Decimal("1e-8"), step)


def _copied_cause(row: RowFacts, follower: FollowerFacts) -> tuple[str, str] | None:
    if row.follower_price is not None and row.leader_price is not None and row.follower_price != row.leader_price:
        away = (abs(row.follower_price - row.leader_price) * HUNDRED / row.leader_price).quantize(PP)
        return SLIPPAGE, f"filled at {num(row.follower_price)}, leader {num(row.leader_price)} ({num(away)} %)"
    ideal = ideal_quantity(row, follower)
    got = row.follower_quantity
    if ideal is None or got is None or got == ideal:
        return None
    if (
        row.kind in OPENING_KINDS
        and row.attempted_quantity is not None
        and follower.sizing_model == SizingModel.PROGRESSIVE
        and row.attempted_quantity.quantize(Decimal("1e-8")) != ideal.quantize(Decimal("1e-8"))
    ):
        return UNEXPLAINED, f"sized {num(row.attempted_quantity)}, the multiplier gives {num(ideal)}"
    if row.max_quantity is not None and ideal > row.max_quantity and _stepped(row.max_quantity, got, row.quantity_step):
        return MAXIMUM_QUANTITY, f"{num(ideal)} capped at {num(row.max_quantity)}, copied {num(got)}"
    recorded = row.kind in REDUCING_KINDS
    if _stepped(ideal, got, row.quantity_step, recorded=recorded):
        return STEP_ROUNDING, f"{num(ideal)} -> {num(got)} (step {num(row.quantity_step)})"
    return UNEXPLAINED, f"copied {num(got)}, ideal {num(ideal)}"


def _refused_cause(row: RowFacts, follower: FollowerFacts, touched: set[str]) -> tuple[str, str]:
    code = row.reason_code
    if code == BELOW_MIN_QUANTITY:
        return MINIMUM_QUANTITY, f"{num(row.attempted_quantity)} below min {num(row.min_quantity)}"
    if code == BELOW_MIN_NOTIONAL:
        value = f"{num(row.attempted_quantity)} x {num(row.leader_price)}"
        return MINIMUM_NOTIONAL, f"{value} below {num(row.min_notional)}"
    if code == d.SLIPPAGE_EXCEEDED:
        return SLIPPAGE, f"{code} (leader {num(row.leader_price)})"
    if code.startswith("RISK_"):
        return RISK_ACTION, code
    if code == d.SUBSCRIPTION_PAUSED:
        if follower.risk_paused:
            return RISK_ACTION, "paused by the watchdog (risk event)"
        return UNEXPLAINED, "paused, but no risk event says why"
    if code in CAPITAL_CODES:
        return CAPITAL, code
    if code == d.PRODUCT_NOT_COPIED:
        return COPY_SETTINGS, code
    if code in NOTHING_TO_REDUCE:
        if row.symbol in touched:
            return FOLLOW_UP, f"{code}: an earlier divergence on {row.symbol}"
        if row.trigger and row.mirror_triggered:
            return TRIGGER, f"the mirror closed on the same {row.trigger}"
        if follower.risk_closed:
            return RISK_ACTION, f"{code}: the watchdog closed the mirror"
        return UNEXPLAINED, f"{code} with no earlier divergence on {row.symbol}"
    return UNEXPLAINED, f"{row.outcome} {code}".strip()


def follower_divergences(follower: FollowerFacts) -> list[Divergence]:
    """Every row whose copy differs from the ideal, with its cause; a "fee"
    row if it paid a profit share; a "residual" row if its gap exceeds the
    tolerance and none of its rows (the fee aside: the gap is gross of it)
    explains it."""
    out: list[Divergence] = []
    touched: set[str] = set()
    for row in sorted(follower.rows, key=lambda r: r.seq):
        if row.outcome == d.COPIED:
            found = _copied_cause(row, follower)
        else:
            found = _refused_cause(row, follower, touched)
        if found is None:
            continue
        touched.add(row.symbol)
        out.append(Divergence(follower.subscription_id, follower.group, row.seq, *found))
    if follower.gap_pp is not None and follower.gap_pp > RESIDUAL_TOLERANCE_PP and not out:
        out.append(
            Divergence(
                follower.subscription_id, follower.group, None, RESIDUAL, f"gap {num(follower.gap_pp)} pp, no row"
            )
        )
    if follower.fee > 0:
        out.append(Divergence(follower.subscription_id, follower.group, None, FEE, f"profit share {num(follower.fee)}"))
    return out


# --- the figures -------------------------------------------------------------------


def roi(pnl: Decimal, scale: Decimal) -> Decimal:
    """PnL / scale (exact to the context's 28 digits)."""
    return pnl / scale


def gap_pp(leader_roi: Decimal, follower_roi: Decimal) -> Decimal:
    """|leader ROI - follower ROI| in percentage points, to 4 places."""
    return (abs(leader_roi - follower_roi) * HUNDRED).quantize(PP, rounding=ROUND_HALF_EVEN)


def median(values: Sequence[Decimal]) -> Decimal:
    if not values:
        return ZERO
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return ((ordered[mid - 1] + ordered[mid]) / 2).quantize(PP, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Summary:
    followers: int
    days: int
    max_gap_pp: Decimal
    median_gap_pp: Decimal
    unexplained: int
    divergences: list[Divergence] = field(default_factory=list)

    @property
    def line(self) -> str:
        return (
            f"fidelity followers={self.followers} days={self.days} max_gap_pp={self.max_gap_pp:.4f} "
            f"median_gap_pp={self.median_gap_pp:.4f} unexplained={self.unexplained}"
        )

    @property
    def ok(self) -> bool:
        return self.max_gap_pp <= MAX_GAP_GOAL_PP and self.unexplained == 0


def summarize(*, days: int, followers: Sequence[FollowerFacts], measured_group: str) -> Summary:
    """The report's line: max and median gap over ``measured_group``
    (progressive 1.0, ample capital); unexplained over every follower."""
    divergences = [row for f in followers for row in follower_divergences(f)]
    gaps = [f.gap_pp for f in followers if f.group == measured_group and f.gap_pp is not None]
    return Summary(
        followers=len(followers),
        days=days,
        max_gap_pp=max(gaps, default=ZERO),
        median_gap_pp=median(gaps),
        unexplained=sum(1 for row in divergences if row.unexplained),
        divergences=divergences,
    )


def id_ranges(ids: Iterable[int]) -> str:
    """``[3, 4, 5, 9]`` as ``3-5,9``."""
    out: list[str] = []
    ordered = sorted(ids)
    start = prev = None
    for pk in [*ordered, None]:
        if pk is not None and prev is not None and pk == prev + 1:
            prev = pk
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = pk
    return ",".join(out)


def table_lines(divergences: Iterable[Divergence], *, seqs_shown: int = 6) -> list[str]:
    """The divergence table: one line per follower and cause (identical
    causes grouped, with their count and event numbers; the detail is the
    first row's), and followers of a group whose lines are the same (the same
    events, the same detail) on one line, as id ranges."""
    per_follower: dict[tuple[int, str], list[Divergence]] = {}
    for row in divergences:
        per_follower.setdefault((row.subscription_id, row.cause), []).append(row)
    same: dict[tuple, list[int]] = {}
    for (sub, cause), rows in per_follower.items():
        key = (rows[0].group, cause, tuple(r.seq for r in rows), rows[0].detail)
        same.setdefault(key, []).append(sub)
    lines = [f"{'followers':<11} {'group':<9} {'cause':<17} {'count':>5}  {'events':<28} detail"]
    for (group, cause, seqs, detail), subs in sorted(same.items(), key=lambda item: (min(item[1]), item[0][1])):
        numbered = [f"#{seq}" for seq in seqs if seq is not None]
        shown = ",".join(numbered[:seqs_shown])
        if len(numbered) > seqs_shown:
            shown += f" +{len(numbered) - seqs_shown}"
        lines.append(f"{id_ranges(subs):<11} {group:<9} {cause:<17} {len(seqs):>5}  {shown or '-':<28} {detail}")
    return lines
