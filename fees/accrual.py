"""Profit-share accrual: what a closed follower mirror or a follower's spot
sell owes, debited from the copy wallet into FEE_ESCROW in the transaction
that closed or sold it.

Two fee models (``Portfolio.fee_model``):

- ``per_trade`` (SPEC.md §6, the default): each closed position and each
  spot sell with a realized profit pays ``profit x share``; a loss pays
  nothing.
- ``high_water_mark``: the subscription pays only on its cumulative realized
  result (Σ realized PnL of its closed mirrors and of its spot sells) above
  the highest level it was already charged up to (``HighWaterMark.mark``,
  starting at 0). A follower who lost 100 and then won 100 is back at the
  mark and pays nothing.

Both are idempotent per source (``FeeAccrual.source_position`` and
``source_order`` are UNIQUE, the escrow transfer's key is derived from the
source), and the high-water mark is idempotent by construction: a replayed
close does not change the cumulative result, which is then not above the
mark it already raised.
"""

import json
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import BigIntegerField, F, Sum
from django.db.models.functions import Cast, Round
from django.utils import timezone

from copytrading import bulk, ledger
from copytrading.models import AccountKind, Order, OrderStatus, Position, PositionStatus, TransferKind
from copytrading.money import ZERO
from fees import math as fee_math
from fees.models import AccrualStatus, AuditAction, FeeAccrual, FeeAuditEntry, FeeModel, HighWaterMark, source_ref
from fees.selectors import leader_caps_many

log = logging.getLogger(__name__)

KIND_ACCRUAL = TransferKind.PROFIT_SHARE


def source_key(position_id: int | None, order_id: int | None = None) -> str:
    """The stem of an accrual's transfer keys: the position's id (the keys
    margin accruals always had), ``order:<id>`` for a spot sell."""
    return str(position_id) if position_id is not None else f"order:{order_id}"


def accrual_key(position_id: int | None, order_id: int | None = None) -> str:
    return f"fee:{source_key(position_id, order_id)}:accrue"


@dataclass(frozen=True)
class ClosedMirror:
    """What realized a follower's result: one position that has just closed
    (fully), or one spot sell (``position_id`` None, ``order_id`` set)."""

    position_id: int | None
    subscription_id: int
    portfolio_id: int
    copy_account_id: int
    leader_user_id: int
    realized_pnl: Decimal  # the position's whole realized PnL (or the sell's), net of trading fees
    profit_share_pct: Decimal  # the portfolio's profit share at the close, a percent ("15.00")
    fee_model: str = FeeModel.PER_TRADE
    order_id: int | None = None  # a spot sell: the order (its ``realized_pnl``)

    @property
    def source(self) -> tuple[int, int]:
        """Sorts positions before orders, each by id."""
        return (0, self.position_id) if self.position_id is not None else (1, self.order_id)

    @property
    def ref(self) -> str:
        return source_ref(self.position_id, self.order_id)


ACCRUAL_FIELDS = [
    "source_position", "source_order", "subscription_id", "portfolio_id", "copy_account", "leader_user", "fee_group",
    "profit", "fee_model", "position_pnl", "mark_before", "mark_after", "portfolio_share_pct", "share_pct",
    "platform_cut_pct", "available", "fee_due", "fee", "platform_part", "leader_part", "status", "attempts",
    "error", "accrued_at",
]  # fmt: skip
AUDITED = (
    "profit", "fee_model", "position_pnl", "mark_before", "mark_after", "portfolio_share_pct", "share_pct",
    "platform_cut_pct", "available", "fee_due", "fee", "platform_part", "leader_part",
)  # fmt: skip


def audit_insert(rows: list[tuple]) -> None:
    """One statement for all audit rows ``(accrual_id, action, detail, actor_id, at)``.
    PostgreSQL takes them through COPY with the detail as JSON text (a
    multi-row INSERT of 500 JSON values spends most of a chunk's time quoting
    them); SQLite gets a multi-row INSERT."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        fields = ["accrual", "action", "detail", "actor", "created_at"]
        bulk.insert_rows(FeeAuditEntry, fields, [(a, act, json.dumps(d), actor, at) for a, act, d, actor, at in rows])
        return
    FeeAuditEntry.objects.bulk_create(
        [
            FeeAuditEntry(accrual_id=accrual_id, action=action, detail=detail, actor_id=actor_id, created_at=at)
            for accrual_id, action, detail, actor_id, at in rows
        ]
    )


def _audit_detail(row: tuple) -> dict:
    values = dict(zip(ACCRUAL_FIELDS, row, strict=True))
    detail = {name: None if values[name] is None else str(values[name]) for name in AUDITED}
    return detail | {
        "fee_group": values["fee_group"],
        "position": values["source_position"],
        "order": values["source_order"],
    }


def cumulative_pnl(account_ids: set[int]) -> dict[int, Decimal]:
    """``{account_id: Σ realized PnL of its closed positions and its spot
    sells}``, exact on every database (SQLite sums decimals as floats: sum
    whole units of 1e-8). A spot order is one without a position; margin
    orders' realized parts are already in their position's total."""
    ids = sorted(account_ids)
    closed = Position.objects.filter(account_id__any=ids, status=PositionStatus.CLOSED)
    sold = Order.objects.filter(account_id__any=ids, position__isnull=True, realized_pnl__isnull=False)
    totals: dict[int, Decimal] = {}
    for rows in (closed, sold):
        for account_id, total in _sums(rows.order_by().values("account_id")):
            totals[account_id] = totals.get(account_id, ZERO) + total
    return totals


def _sums(rows) -> list[tuple[int, Decimal]]:
    if connection.vendor == "sqlite":
        units = Sum(Cast(Round(F("realized_pnl") * 10**8), output_field=BigIntegerField()))
        return [(pk, Decimal(n).scaleb(-8)) for pk, n in rows.annotate(s=units).values_list("account_id", "s")]
    return list(rows.annotate(s=Sum("realized_pnl")).values_list("account_id", "s"))


@dataclass
class _Charge:
    """What one close is charged on, before the wallet's balance is looked at."""

    close: ClosedMirror
    profit: Decimal
    mark_before: Decimal | None = None
    mark_after: Decimal | None = None


def _per_trade(eligible: list[ClosedMirror]) -> list[_Charge]:
    return [_Charge(c, c.realized_pnl) for c in eligible]


def _high_water(eligible: list[ClosedMirror]) -> list[_Charge]:
    """One charge per subscription at most: the cumulative result above the
    mark, attributed to the batch's last close of that subscription (the
    others' profit is in the same cumulative figure)."""
    if not eligible:
        return []
    last: dict[int, ClosedMirror] = {}
    batch_pnl: dict[int, Decimal] = {}
    for c in eligible:  # ascending source (positions, then spot sells)
        last[c.subscription_id] = c
        batch_pnl[c.subscription_id] = batch_pnl.get(c.subscription_id, ZERO) + c.realized_pnl
    totals = cumulative_pnl({c.copy_account_id for c in last.values()})
    marks = dict(HighWaterMark.objects.filter(subscription_id__any=sorted(last)).values_list("subscription_id", "mark"))
    charges = []
    for subscription_id, close in sorted(last.items()):
        total = totals.get(close.copy_account_id, ZERO)
        mark = fee_math.high_water_base(
            mark=marks.get(subscription_id, ZERO), total=total, batch_pnl=batch_pnl[subscription_id]
        )
        if total > mark:
            charges.append(_Charge(close, total - mark, mark, total))
    return charges


def _marks_write(charges: list[_Charge], now) -> None:
    """Raise the marks of the subscriptions just charged (three statements at most)."""
    if not charges:
        return
    by_subscription = {c.close.subscription_id: c for c in charges}
    existing = dict(
        HighWaterMark.objects.filter(subscription_id__any=sorted(by_subscription)).values_list("subscription_id", "pk")
    )
    bulk.update_rows(
        HighWaterMark,
        ["mark", "updated_at"],
        [(existing[s], c.mark_after, now) for s, c in sorted(by_subscription.items()) if s in existing],
    )
    HighWaterMark.objects.bulk_create(
        [
            HighWaterMark(
                subscription_id=s,
                portfolio_id=c.close.portfolio_id,
                copy_account_id=c.close.copy_account_id,
                mark=c.mark_after,
                updated_at=now,
            )
            for s, c in sorted(by_subscription.items())
            if s not in existing
        ]
    )


@transaction.atomic
def fees_accrue(*, closes: list[ClosedMirror], returning: bool = True) -> list[FeeAccrual]:
    """Accrue the profit share of closed follower positions and follower
    spot sells, set-based.

    Contract for the caller (``followers.fee_hooks``, the close listener the
    venue calls for every batch of fills that closes positions or realizes
    spot sells: propagation chunks, price-driven matching (resting limits,
    TP/SL), a follower's own close, the watchdog's force-close, unfollow):
    - call it in the same transaction that closed the positions, after the
      venue wrote them, with one ``ClosedMirror`` per position that is now
      ``closed`` (a partial reduce is not a close: the position's
      ``realized_pnl`` keeps accumulating and is charged once, when it
      closes) and one per filled spot sell (``order_id`` set: the order's
      ``realized_pnl``, proceeds less the average cost of what was sold).
      Pass the total ``realized_pnl`` net of any trading fee, and the
      portfolio's ``profit_share_pct`` and ``fee_model``.
    - any number of closes per call (500 per chunk is the expected size);
      it costs a constant number of queries: locks the copy wallets, one read
      of the positions (and one of the orders) and their accruals, the
      leaders' caps, under the high-water mark two sums of realized PnL
      (positions, spot orders) and one read and one or two writes of the
      marks, one insert of accruals, one of audit rows, and the ledger
      writes.
    - idempotent: a source that already has an accrual (a replayed chunk,
      the same close reported twice, a concurrent caller) is skipped; the
      wallet is debited at most once (UNIQUE source position / order and the
      transfer's idempotency key).
    - a loss, break-even, or a profit whose fee rounds below 1e-8 accrues
      nothing and writes nothing. A position that is not closed, an order
      that is not a filled spot sell, or either not in the given copy wallet
      is skipped (logged), never charged.
    - the fee is profit * share (share capped by the leader's groups),
      rounded down to 8 places; if the wallet's free balance is short of it
      (the profit was withdrawn or is margin elsewhere) only the free part is
      charged and ``fee_due`` keeps the difference visible.
    The fee moves at once from the copy wallet into FEE_ESCROW; the settlement
    job credits leader and platform. Returns the new accruals (``returning=False``,
    the hot path's choice: nothing, one query less).
    """
    wanted: dict[tuple[int, int], ClosedMirror] = {}
    for close in closes:
        if close.realized_pnl > 0 and close.profit_share_pct > 0:
            wanted.setdefault(close.source, close)
    if not wanted:
        return []

    # Lock the wallets first: a concurrent caller with the same sources waits
    # here, then (read committed) sees the accruals and marks this call writes.
    balances = ledger.lock_balances(c.copy_account_id for c in wanted.values())
    found = _sources_state(sorted(wanted))
    eligible: list[ClosedMirror] = []
    for source in sorted(wanted):
        close = wanted[source]
        done, account_id, accrual_id = found.get(source, (False, None, None))
        if accrual_id is not None:
            continue  # already accrued: a replay
        if not done or account_id != close.copy_account_id:
            log.warning("fees_accrue skipped %s: done %s, account %s", close.ref, done, account_id)
            continue
        eligible.append(close)
    charges = _per_trade([c for c in eligible if c.fee_model != FeeModel.HIGH_WATER_MARK]) + _high_water(
        [c for c in eligible if c.fee_model == FeeModel.HIGH_WATER_MARK]
    )
    if not charges:
        return []
    caps = leader_caps_many({c.close.leader_user_id for c in charges})
    escrow_id = ledger.system_account(AccountKind.FEE_ESCROW).pk
    now = timezone.now()
    free = {pk: balance - locked for pk, (balance, locked) in balances.items()}

    rows, specs, marked = [], [], []
    for charge in sorted(charges, key=lambda c: c.close.source):
        close = charge.close
        cap = caps[close.leader_user_id]
        share = min(close.profit_share_pct, cap.max_profit_share_pct)
        due = fee_math.fee_split(profit=charge.profit, share_pct=share, platform_cut_pct=cap.platform_cut_pct)
        if due.fee == 0:
            continue  # under the high-water mark the mark stays, and the gain counts next time
        available = max(free[close.copy_account_id], ZERO)
        charged = fee_math.fee_charge(due, available=available, platform_cut_pct=cap.platform_cut_pct)
        free[close.copy_account_id] -= charged.fee
        if charge.mark_after is not None:
            marked.append(charge)
        rows.append(
            (
                close.position_id, close.order_id, close.subscription_id, close.portfolio_id, close.copy_account_id,
                close.leader_user_id, cap.fee_group_id, charge.profit, close.fee_model, close.realized_pnl,
                charge.mark_before, charge.mark_after, close.profit_share_pct, share, cap.platform_cut_pct,
                available, due.fee, charged.fee, charged.platform_part, charged.leader_part,
                AccrualStatus.ACCRUED, 0, "", now,
            )
        )  # fmt: skip
        if charged.fee:
            specs.append(
                ledger.TransferSpec(
                    close.copy_account_id,
                    escrow_id,
                    charged.fee,
                    KIND_ACCRUAL,
                    accrual_key(close.position_id, close.order_id),
                    close.ref,
                )
            )
    if not rows:
        return []
    ids = bulk.insert_rows(FeeAccrual, ACCRUAL_FIELDS, rows, returning=True)
    ledger.apply_transfers(specs)
    _marks_write(marked, now)
    audit_insert([(pk, AuditAction.ACCRUED, _audit_detail(row), None, now) for pk, row in zip(ids, rows, strict=True)])
    return list(FeeAccrual.objects.filter(pk__any=ids).order_by("pk")) if returning else []


def _sources_state(sources: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[bool, int, int | None]]:
    """``{source: (realized, account_id, accrual_id)}``: is the position
    closed / the spot sell filled with a realized result, whose wallet is it,
    and its accrual if any. One query per kind of source present."""
    state = {}
    position_ids = [pk for kind, pk in sources if kind == 0]
    order_ids = [pk for kind, pk in sources if kind == 1]
    if position_ids:
        for pk, status, account_id, accrual_id in Position.objects.filter(pk__any=position_ids).values_list(
            "pk", "status", "account_id", "fee_accrual__id"
        ):
            state[(0, pk)] = (status == PositionStatus.CLOSED, account_id, accrual_id)
    if order_ids:
        for pk, status, position_id, realized, account_id, accrual_id in Order.objects.filter(
            pk__any=order_ids
        ).values_list("pk", "status", "position_id", "realized_pnl", "account_id", "fee_accrual__id"):
            sold = status == OrderStatus.FILLED and position_id is None and realized is not None
            state[(1, pk)] = (sold, account_id, accrual_id)
    return state


def accrued_by_source(position_ids: list[int]) -> dict[int, int]:
    """``{position_id: accrual_id}`` (for callers that want to know what a replay skipped; positions only)."""
    return dict(FeeAccrual.objects.filter(source_position_id__any=position_ids).values_list("source_position_id", "pk"))
