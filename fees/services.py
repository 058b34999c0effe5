"""Every write of the fees app: groups, profit-share accrual, settlement,
recovery of a stuck accrual, and leader withdrawals.

Money moves in three ledger steps, each with an idempotency key derived from
the closed position, so any step replayed (a retried chunk, a settlement
re-run after a crash) moves nothing twice:

    copy wallet --accrual--> FEE_ESCROW --settlement--> leader profit account
                                        \\-------------> PLATFORM_FEES
    leader profit account --withdrawal--> leader main wallet
"""

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from copytrading import audit, ledger
from copytrading.errors import Conflict, DomainError, InsufficientFunds
from copytrading.models import Account, AccountKind, Transfer, TransferKind
from copytrading.money import ZERO
from copytrading.notifications.services import Note, notify
from copytrading.observability import record
from fees import math as fee_math
from fees.accrual import (  # noqa: F401 (re-exported: the app's write entry points)
    ACCRUAL_FIELDS,
    KIND_ACCRUAL,
    ClosedMirror,
    accrual_key,
    accrued_by_source,
    audit_insert,
    fees_accrue,
    source_key,
)
from fees.models import (
    AccrualStatus,
    AuditAction,
    FeeAccrual,
    FeeAuditEntry,
    FeeGroup,
    LeaderGroupAssignment,
    LeaderProfitAccount,
    LeaderWithdrawal,
    LimitsGroup,
    source_ref,
)
from fees.selectors import LeaderCaps, default_fee_group, default_limits_group, leader_caps

log = logging.getLogger(__name__)

# Transfer kinds of the fee flow.
KIND_TO_LEADER = TransferKind.FEE_SETTLE_LEADER
KIND_TO_PLATFORM = TransferKind.FEE_SETTLE_PLATFORM
KIND_WITHDRAWAL = TransferKind.LEADER_WITHDRAWAL

MIN_WITHDRAWAL = Decimal("1.00")


def min_withdrawal() -> Decimal:
    return getattr(settings, "FEES_MIN_WITHDRAWAL", MIN_WITHDRAWAL)


def leader_key(position_id: int | None, order_id: int | None = None) -> str:
    return f"fee:{source_key(position_id, order_id)}:leader"


def platform_key(position_id: int | None, order_id: int | None = None) -> str:
    return f"fee:{source_key(position_id, order_id)}:platform"


# --- groups and caps -----------------------------------------------------------


@transaction.atomic
def leader_group_assign(
    *, leader, fee_group: FeeGroup | None = None, limits_group: LimitsGroup | None = None, actor=None
) -> LeaderGroupAssignment:
    """Put a leader in a fee group and/or a limits group (the other keeps its
    current value, or the default). Caps apply to accruals from now on; a
    portfolio asking more than the new cap is charged the cap."""
    current = LeaderGroupAssignment.objects.select_for_update().filter(leader=leader).first()
    fee_group = fee_group or (current.fee_group if current else default_fee_group())
    limits_group = limits_group or (current.limits_group if current else default_limits_group())
    if current is None:
        try:
            with transaction.atomic():
                return LeaderGroupAssignment.objects.create(
                    leader=leader, fee_group=fee_group, limits_group=limits_group, assigned_by=actor
                )
        except IntegrityError:
            current = LeaderGroupAssignment.objects.select_for_update().get(leader=leader)
    current.fee_group, current.limits_group, current.assigned_by = fee_group, limits_group, actor
    current.save(update_fields=["fee_group", "limits_group", "assigned_by", "assigned_at"])
    return current


def profit_share_validate(*, leader, profit_share_pct: Decimal) -> LeaderCaps:
    """Refuse a profit share the leader's groups do not allow (portfolio
    create and edit call this)."""
    if not fee_math.valid_pct(profit_share_pct):
        raise DomainError(
            "INVALID_PROFIT_SHARE",
            "profit_share_pct must be a percentage from 0 to 100 with at most 2 decimal places.",
            field="profit_share_pct",
        )
    caps = leader_caps(leader.pk)
    if profit_share_pct > caps.max_profit_share_pct:
        raise DomainError(
            "PROFIT_SHARE_ABOVE_CAP",
            f"Your groups allow a profit share of at most {caps.max_profit_share_pct} %.",
            field="profit_share_pct",
        )
    return caps


def follower_capacity_validate(*, leader, current_followers: int) -> LeaderCaps:
    """Refuse one more follower when the portfolio is at its limits group's cap
    (subscribe calls this with the portfolio row locked)."""
    caps = leader_caps(leader.pk)
    if current_followers >= caps.max_followers:
        raise Conflict("FOLLOWER_LIMIT_REACHED", "This portfolio has no open follower slots.", field="portfolio")
    return caps


# --- accrual: fees.accrual (re-exported here, the app's one write entry point) ------


# --- settlement -------------------------------------------------------------------


@dataclass(frozen=True)
class SettleResult:
    claimed: int
    settled: int
    failed: int


def leader_profit_accounts(pairs: set[tuple[int, int]]) -> dict[int, int]:
    """``{portfolio_id: account_id}`` for ``(portfolio_id, leader_id)`` pairs,
    opening the missing profit accounts (a handful per run, once each ever)."""
    portfolio_ids = [portfolio_id for portfolio_id, _ in pairs]
    found = dict(
        LeaderProfitAccount.objects.filter(portfolio_id__any=portfolio_ids).values_list("portfolio_id", "account_id")
    )
    for portfolio_id, leader_id in sorted(pairs):
        if portfolio_id in found:
            continue
        try:
            with transaction.atomic():
                account = ledger.account_open(kind=AccountKind.LEADER_PROFIT, name=f"profit:{portfolio_id}")
                account.user_id = leader_id
                account.save(update_fields=["user"])
                LeaderProfitAccount.objects.create(portfolio_id=portfolio_id, leader_id=leader_id, account=account)
                found[portfolio_id] = account.pk
        except IntegrityError:
            # Opened by a concurrent settlement a moment ago.
            found[portfolio_id] = LeaderProfitAccount.objects.get(portfolio_id=portfolio_id).account_id
    return found


def _settle(accrual_ids: list[int], *, actor=None, action: str = AuditAction.SETTLED) -> int:
    """Credit leader and platform from escrow for these (already claimed)
    accruals and mark them settled. A transfer that already exists under its
    key (a run that crashed after moving money but before marking) is not
    repeated. Runs in the caller's transaction; raises if anything is off."""
    rows = list(
        FeeAccrual.objects.filter(pk__any=accrual_ids)
        .exclude(status=AccrualStatus.SETTLED)
        .order_by("pk")
        .values_list(
            "pk", "source_position_id", "source_order_id", "portfolio_id", "leader_user_id", "leader_part",
            "platform_part",
        )
    )  # fmt: skip
    if not rows:
        return 0
    profit_accounts = leader_profit_accounts({(r[3], r[4]) for r in rows})
    escrow_id = ledger.system_account(AccountKind.FEE_ESCROW).pk
    platform_id = ledger.system_account(AccountKind.PLATFORM_FEES).pk
    specs = []
    for _, position_id, order_id, portfolio_id, _, leader_part, platform_part in rows:
        ref = source_ref(position_id, order_id)
        if leader_part:
            specs.append(
                ledger.TransferSpec(
                    escrow_id,
                    profit_accounts[portfolio_id],
                    leader_part,
                    KIND_TO_LEADER,
                    leader_key(position_id, order_id),
                    ref,
                )
            )
        if platform_part:
            specs.append(
                ledger.TransferSpec(
                    escrow_id,
                    platform_id,
                    platform_part,
                    KIND_TO_PLATFORM,
                    platform_key(position_id, order_id),
                    ref,
                )
            )
    existing = Transfer.objects.filter(idempotency_key__any=[s.key for s in specs])
    done = {
        key: (debit, credit, amount)
        for key, debit, credit, amount in existing.values_list("idempotency_key", "debit_id", "credit_id", "amount")
    }
    for spec in specs:
        if spec.key in done and done[spec.key] != (spec.debit_id, spec.credit_id, spec.amount):
            raise Conflict("IDEMPOTENCY_CONFLICT", f"Transfer {spec.key} exists with different terms.")
    missing = [s for s in specs if s.key not in done]
    balances = ledger.lock_balances([escrow_id, platform_id, *(s.credit_id for s in missing)])
    needed = sum((s.amount for s in missing), ZERO)
    if needed > balances[escrow_id][0]:
        raise DomainError("ESCROW_SHORT", f"Fee escrow holds {balances[escrow_id][0]}; settling needs {needed}.")
    ledger.apply_transfers(missing)
    record.fee_settlements((s.kind, s.amount) for s in missing)
    now = timezone.now()
    ids = [r[0] for r in rows]
    notify(
        [
            Note(
                leader_user_id,
                "profit_share_credited",
                f"fee:{pk}",
                {"accrual_id": pk, "portfolio_id": portfolio_id, "amount": str(leader_part)},
            )
            for pk, _, _, portfolio_id, leader_user_id, leader_part, _ in rows
            if leader_part
        ],
        now=now,
    )
    FeeAccrual.objects.filter(pk__any=ids).exclude(status=AccrualStatus.SETTLED).update(
        status=AccrualStatus.SETTLED, settled_at=now, error=""
    )
    replayed = {s.key for s in specs if s.key in done}
    audit_insert(
        [
            (
                pk,
                action,
                {
                    "leader_part": str(leader_part),
                    "platform_part": str(platform_part),
                    "leader_account": profit_accounts[portfolio_id],
                    "platform_account": platform_id,
                    # Parts found already moved by an earlier, interrupted run.
                    "already_moved": sorted(
                        k for k in (leader_key(pos, order), platform_key(pos, order)) if k in replayed
                    ),
                },
                actor.pk if actor is not None else None,
                now,
            )
            for pk, pos, order, portfolio_id, _, leader_part, platform_part in rows
        ],
    )
    return len(rows)


def _record_failure(accrual_id: int, exc: Exception, *, actor=None) -> None:
    error = exc.detail if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
    FeeAccrual.objects.filter(pk=accrual_id).exclude(status=AccrualStatus.SETTLED).update(
        status=AccrualStatus.FAILED, error=error[:2000]
    )
    FeeAuditEntry.objects.create(
        accrual_id=accrual_id,
        action=AuditAction.FAILED,
        detail={"error": error[:2000]},
        actor=actor,
        created_at=timezone.now(),
    )


@transaction.atomic
def fees_settle(*, limit: int = 1000, portfolio_id: int | None = None) -> SettleResult:
    """Settle up to ``limit`` accrued fees, oldest first (the minute job;
    a closing portfolio's wind-down settles its own with ``portfolio_id``
    before it archives, the same way).

    Rows are claimed with FOR UPDATE SKIP LOCKED, so concurrent runs take
    disjoint batches; the batch settles in one set-based step. If that step
    fails, each accrual is retried alone in a savepoint and the ones that
    still fail are marked ``failed`` with the error — one stuck accrual never
    blocks the others, and staff resolve it (``fee_accrual_resolve``).
    """
    accrued = FeeAccrual.objects.filter(status=AccrualStatus.ACCRUED)
    if portfolio_id is not None:
        accrued = accrued.filter(portfolio_id=portfolio_id)
    ids = list(accrued.order_by("pk").select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
    if not ids:
        return SettleResult(0, 0, 0)
    FeeAccrual.objects.filter(pk__any=ids).update(attempts=F("attempts") + 1)
    try:
        with transaction.atomic():
            return SettleResult(len(ids), _settle(ids), 0)
    except Exception:
        # Isolated below, row by row; every error ends up recorded.
        log.warning("fee settlement batch of %s failed; settling one by one", len(ids), exc_info=True)
    settled = failed = 0
    for pk in ids:
        try:
            with transaction.atomic():
                settled += _settle([pk])
        except Exception as exc:  # noqa: BLE001 (recorded on the accrual, shown to staff)
            log.error("fee accrual %s could not settle: %s", pk, exc)
            _record_failure(pk, exc)
            failed += 1
    return SettleResult(len(ids), settled, failed)


@transaction.atomic
def fee_accrual_resolve(*, accrual_id: int, actor=None) -> FeeAccrual:
    """Staff's one-click recovery of a stuck accrual (failed, or accrued and
    never settled): re-run its settlement. Safe to click twice: a settled
    accrual is left as it is, and parts already moved are not moved again.
    Returns the accrual; if it still cannot settle it stays ``failed`` with
    the new error."""
    accrual = FeeAccrual.objects.select_for_update().filter(pk=accrual_id).first()
    if accrual is None:
        raise DomainError("NOT_FOUND", "There is no such fee accrual.", status=404)
    if accrual.status == AccrualStatus.SETTLED:
        return accrual
    before = accrual.status
    FeeAccrual.objects.filter(pk=accrual_id).update(attempts=F("attempts") + 1)
    try:
        with transaction.atomic():
            _settle([accrual_id], actor=actor, action=AuditAction.RESOLVED)
    except Exception as exc:  # noqa: BLE001 (recorded on the accrual, shown to staff)
        _record_failure(accrual_id, exc, actor=actor)
    accrual.refresh_from_db()
    audit.record(
        actor=actor,
        action="resolve",
        target=accrual,
        changes={"status": (before, accrual.status), "error": (None, accrual.error or None)},
    )
    return accrual


# --- leader withdrawals -------------------------------------------------------------


@transaction.atomic
def leader_withdrawal_create(
    *, leader, portfolio_id: int, amount: Decimal | None = None, idempotency_key: str = ""
) -> LeaderWithdrawal:
    """Move earned profit share of a portfolio to the leader's main wallet.

    The amount is rounded down to whole cents (the rest stays in the profit
    account) and must reach the minimum; ``amount=None`` withdraws everything
    available. The caller has checked the leader owns the portfolio. A replay
    with the same idempotency key returns the first withdrawal.
    """
    if amount is not None and (not amount.is_finite() or amount <= 0):
        raise DomainError("INVALID_AMOUNT", "The amount must be greater than zero.", field="amount")
    link = LeaderProfitAccount.objects.filter(portfolio_id=portfolio_id, leader=leader).first()
    if link is None:
        raise InsufficientFunds("Nothing has been earned on this portfolio yet.")
    main = ledger.main_account_for(leader)
    profit = ledger.lock_accounts([link.account_id, main.pk])[link.account_id]
    if profit.is_closed:
        raise Conflict(
            "PORTFOLIO_ARCHIVED",
            "This portfolio is archived: everything it earned was returned to your main wallet.",
            field="portfolio",
        )
    if idempotency_key:
        # Read after the lock: a concurrent request with the same key has
        # committed by now, and its row is visible.
        previous = LeaderWithdrawal.objects.filter(leader=leader, idempotency_key=idempotency_key).first()
        if previous is not None:
            return _same_withdrawal(previous, portfolio_id, amount)
    requested = amount if amount is not None else profit.free
    cents = fee_math.withdrawal_amount(requested)
    minimum = min_withdrawal()
    if cents < minimum:
        raise DomainError(
            "BELOW_MIN_WITHDRAWAL",
            f"A withdrawal moves whole cents and at least {minimum}; {cents} is too little.",
            field="amount",
        )
    if cents > profit.free:
        raise InsufficientFunds(f"The profit account has {profit.free} available.")
    key = f"leader-withdrawal:{leader.pk}:{idempotency_key or uuid.uuid4().hex}"
    transfer, _ = ledger.transfer(
        debit_id=profit.pk,
        credit_id=main.pk,
        amount=cents,
        kind=KIND_WITHDRAWAL,
        key=key,
        ref=f"portfolio {portfolio_id}",
    )
    withdrawal = LeaderWithdrawal.objects.create(
        leader=leader,
        portfolio_id=portfolio_id,
        profit_account=profit,
        main_account=main,
        requested_amount=requested,
        amount=cents,
        currency=profit.currency,
        transfer=transfer,
        idempotency_key=idempotency_key,
    )
    data = {"withdrawal_id": withdrawal.pk, "portfolio_id": portfolio_id, "amount": str(cents)}
    notify([Note(leader.pk, "leader_withdrawal_done", f"leader_withdrawal:{withdrawal.pk}", data)])
    return withdrawal


def profit_return_key(portfolio_id: int) -> str:
    return f"portfolio:{portfolio_id}:archive-profit-return"


@transaction.atomic
def leader_profit_return(*, portfolio_id: int) -> LeaderWithdrawal | None:
    """The archive's last step for the leader's earnings: move everything the
    portfolio's profit account holds to the leader's main wallet and close
    the account (nothing stays behind in a closed portfolio). All of it, to
    the 1e-8, not whole cents like a withdrawal the leader asks for: the
    account closes, so a rounded-off rest would be stranded (the trading
    account's return does the same). Recorded as a withdrawal (its transfer's
    key ``portfolio:<id>:archive-profit-return``, a name no request can
    choose), so the leader's withdrawal list and the fee books (earned -
    withdrawn = balance) show it. The caller has settled the portfolio's
    accruals; idempotent: a closed account returns None."""
    link = LeaderProfitAccount.objects.select_related("leader").filter(portfolio_id=portfolio_id).first()
    if link is None:
        return None  # never earned anything
    main = ledger.main_account_for(link.leader)
    profit = ledger.lock_accounts([link.account_id, main.pk])[link.account_id]
    if profit.is_closed:
        return None
    withdrawal = None
    if profit.balance > 0:
        transfer, _ = ledger.transfer(
            debit_id=profit.pk,
            credit_id=main.pk,
            amount=profit.balance,
            kind=KIND_WITHDRAWAL,
            key=profit_return_key(portfolio_id),
            ref=f"portfolio {portfolio_id} archived",
        )
        withdrawal = LeaderWithdrawal.objects.create(
            leader=link.leader,
            portfolio_id=portfolio_id,
            profit_account=profit,
            main_account=main,
            requested_amount=profit.balance,
            amount=profit.balance,
            currency=profit.currency,
            transfer=transfer,
        )
    Account.objects.filter(pk=profit.pk).update(is_closed=True)
    return withdrawal


def _same_withdrawal(previous: LeaderWithdrawal, portfolio_id: int, amount: Decimal | None) -> LeaderWithdrawal:
    if previous.portfolio_id != portfolio_id or (amount is not None and amount != previous.requested_amount):
        raise Conflict(
            "IDEMPOTENCY_CONFLICT", "This idempotency key was used for a different withdrawal.", field="amount"
        )
    return previous
