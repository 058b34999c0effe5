"""The double-entry ledger: the only way a balance changes.

Every movement is a ``Transfer`` with a unique idempotency key; replaying the
same key is a no-op. Cached balances are updated in the same transaction with
conditional ``UPDATE``s (no check-then-act), and the database's CHECK
constraints are the last line of defence against a negative balance.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import BigIntegerField, F, Q, Sum
from django.db.models.functions import Cast, Round
from django.utils import timezone

from copytrading import bulk, changes
from copytrading.errors import Conflict, DomainError, InsufficientFunds
from copytrading.models import (
    UNBOUNDED_KINDS,
    Account,
    AccountKind,
    Holding,
    Instrument,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Transfer,
)
from copytrading.money import Q8, ZERO

SYSTEM_KINDS = (AccountKind.VENUE, AccountKind.EXTERNAL, AccountKind.PLATFORM_FEES, AccountKind.FEE_ESCROW)


@dataclass(frozen=True)
class TransferSpec:
    debit_id: int
    credit_id: int
    amount: Decimal
    kind: str
    key: str
    ref: str = ""


def system_account(kind: str) -> Account:
    """The singleton account of a system kind (created on first use)."""
    if kind not in SYSTEM_KINDS:
        raise ValueError(f"{kind} is not a system account kind")
    # Unordered: one row per kind (a unique index), and ``first()``'s
    # ORDER BY id made PostgreSQL walk the primary key past every follower's
    # wallet created before the venue's (4-7 ms per fan-out chunk before
    # the table was analyzed).
    account = next(iter(Account.objects.filter(kind=kind).order_by()[:1]), None)
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return Account.objects.create(kind=kind, name=kind.lower(), currency=settings.PRIMARY_CURRENCY)
    except IntegrityError:
        return Account.objects.get(kind=kind)


def account_open(*, kind: str, user=None, name: str = "") -> Account:
    return Account.objects.create(kind=kind, user=user, name=name, currency=settings.PRIMARY_CURRENCY)


def main_account_for(user) -> Account:
    account = Account.objects.filter(kind=AccountKind.MAIN, user=user).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return account_open(kind=AccountKind.MAIN, user=user, name=f"main:{user.pk}")
    except IntegrityError:
        return Account.objects.get(kind=AccountKind.MAIN, user=user)


def _exact(expression):
    """SQLite has no decimal type and adds these columns as binary floats: a
    margin locked and released in steps can end 1e-15 below zero and trip the
    CHECK. Rounding each stored sum to the column's 8 places keeps SQLite on
    the values PostgreSQL's numeric holds exactly (there it changes nothing)."""
    return Round(expression, 8)


def _validate_amount(amount: Decimal) -> None:
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise DomainError("INVALID_AMOUNT", "The amount must be a decimal number.", field="amount")
    if amount <= 0:
        raise DomainError("INVALID_AMOUNT", "The amount must be greater than zero.", field="amount")
    if amount != amount.quantize(Q8):
        raise DomainError("INVALID_AMOUNT", "The amount has more than 8 decimal places.", field="amount")


@transaction.atomic
def transfer(
    *, debit_id: int, credit_id: int, amount: Decimal, kind: str, key: str, ref: str = ""
) -> tuple[Transfer, bool]:
    """Move ``amount`` of free balance from debit to credit, exactly once per key.

    Returns ``(transfer, created)``; a replay of the same key returns the
    original transfer and ``created=False``. A replay with different terms is
    a conflict, never silently accepted.
    """
    _validate_amount(amount)
    if debit_id == credit_id:
        raise DomainError("SAME_ACCOUNT", "A transfer needs two different accounts.")
    try:
        with transaction.atomic():
            row = Transfer.objects.create(
                debit_id=debit_id, credit_id=credit_id, amount=amount, kind=kind, idempotency_key=key, ref=ref
            )
    except IntegrityError:
        existing = Transfer.objects.get(idempotency_key=key)
        if (existing.debit_id, existing.credit_id, existing.amount) != (debit_id, credit_id, amount):
            raise Conflict("IDEMPOTENCY_CONFLICT", "This idempotency key was used for a different transfer.") from None
        return existing, False

    # Touch the two rows in primary-key order so concurrent transfers between
    # the same accounts cannot deadlock.
    for account_id in sorted((debit_id, credit_id)):
        if account_id == debit_id:
            # Only free balance can leave; the condition makes it atomic.
            updated = (
                Account.objects.filter(pk=debit_id, is_closed=False)
                .filter(Q(kind__in=UNBOUNDED_KINDS) | Q(balance__gte=F("locked") + amount))
                .update(balance=_exact(F("balance") - amount))
            )
            if not updated:
                raise InsufficientFunds()
        else:
            if not Account.objects.filter(pk=credit_id, is_closed=False).update(balance=_exact(F("balance") + amount)):
                raise DomainError("ACCOUNT_CLOSED", "The receiving account is closed.")
    changes.touch(accounts=(debit_id, credit_id))
    return row, True


def apply_transfers(specs: Iterable[TransferSpec], *, locked_deltas: dict[int, Decimal] | None = None) -> int:
    """Set-based variant for the hot path: insert all transfers and move every
    touched balance (and margin lock) with one UPDATE. Must run inside the
    caller's transaction, with the touched accounts already row-locked and the
    amounts already checked against them; the CHECK constraints still guard."""
    specs = list(specs)
    balance_deltas: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for spec in specs:
        if spec.amount <= 0:
            raise ValueError(f"non-positive transfer {spec}")
        balance_deltas[spec.debit_id] -= spec.amount
        balance_deltas[spec.credit_id] += spec.amount
    now = timezone.now()
    bulk.insert_rows(
        Transfer,
        ["debit", "credit", "amount", "kind", "idempotency_key", "ref", "created_at"],
        [(s.debit_id, s.credit_id, s.amount, s.kind, s.key, s.ref, now) for s in specs],
    )
    locked_deltas = locked_deltas or {}
    touched = sorted(set(balance_deltas) | set(locked_deltas))
    # One row per account (aggregated above), in primary-key order.
    bulk.update_rows(
        Account,
        ["balance", "locked"],
        [
            (pk, balance_deltas.get(pk, ZERO), locked_deltas.get(pk, ZERO))
            for pk in touched
            if balance_deltas.get(pk) or locked_deltas.get(pk)
        ],
        add=True,
    )
    changes.touch(accounts=touched)
    return len(specs)


def lock_accounts(account_ids: Iterable[int]) -> dict[int, Account]:
    """Row-lock accounts in primary-key order and return them by id."""
    ids = sorted(set(account_ids))
    return {a.pk: a for a in Account.objects.filter(pk__in=ids).order_by("pk").select_for_update()}


def lock_balances(account_ids: Iterable[int]) -> dict[int, tuple[Decimal, Decimal]]:
    """The hot path's variant of ``lock_accounts``: ``{id: (balance, locked)}``."""
    ids = sorted(set(account_ids))
    rows = Account.objects.filter(pk__any=ids).order_by("pk").select_for_update().values_list("pk", "balance", "locked")
    return {pk: (balance, locked) for pk, balance, locked in rows}


@dataclass(frozen=True)
class LedgerReport:
    total: Decimal
    mismatched: list[tuple[int, Decimal, Decimal]]
    negative: list[int]
    # (what, id, cached, expected): an account's locked cash or a holding's
    # reserved part that differs from what its open positions and resting
    # orders hold.
    unreserved: list[tuple[str, int, Decimal, Decimal]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.total == 0 and not self.mismatched and not self.negative and not self.unreserved


def _sums_by(column: str) -> dict[int, Decimal]:
    """Σ transfer amounts per account, exact on every database."""
    rows = Transfer.objects.values(column)
    if connection.vendor == "sqlite":
        # SQLite would sum the amounts as binary floats (off in the last
        # places after enough rows): sum whole units of 1e-8 as integers.
        units = Sum(Cast(Round(F("amount") * 10**8), output_field=BigIntegerField()))
        return {pk: Decimal(n).scaleb(-8) for pk, n in rows.annotate(s=units).values_list(column, "s")}
    return dict(rows.annotate(s=Sum("amount")).values_list(column, "s"))


def ledger_check() -> LedgerReport:
    """Σ balances = 0, each cached balance = Σ of its transfers, nothing negative."""
    credits, debits = _sums_by("credit_id"), _sums_by("debit_id")
    total = ZERO
    mismatched: list[tuple[int, Decimal, Decimal]] = []
    negative: list[int] = []
    for account in Account.objects.only("pk", "kind", "balance", "locked").iterator():
        expected = credits.get(account.pk, ZERO) - debits.get(account.pk, ZERO)
        total += account.balance
        if account.balance != expected:
            mismatched.append((account.pk, account.balance, expected))
        if account.kind not in UNBOUNDED_KINDS and (account.balance < 0 or account.locked > account.balance):
            negative.append(account.pk)
    return LedgerReport(total=total, mismatched=mismatched, negative=negative, unreserved=_reservation_mismatches())


def _reservation_mismatches() -> list[tuple[str, int, Decimal, Decimal]]:
    """Every account's ``locked`` = Σ margin of its open positions + Σ what its
    resting orders paying in the primary currency reserve; every holding's
    ``reserved`` = Σ what its resting spot orders reserve of that asset
    (``Instrument.reserved_asset``). Summed in Python: exact everywhere."""
    cash: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for account_id, margin in Position.objects.filter(status=PositionStatus.OPEN).values_list("account_id", "margin"):
        cash[account_id] += margin
    held: dict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)
    instruments = Instrument.objects.in_bulk()
    resting = Order.objects.filter(status=OrderStatus.OPEN).values_list(
        "account_id", "instrument_id", "side", "reserved"
    )
    for account_id, instrument_id, side, reserved in resting:
        asset = instruments[instrument_id].reserved_asset(side)
        if asset is None:
            cash[account_id] += reserved
        else:
            held[(account_id, asset)] += reserved
    out: list[tuple[str, int, Decimal, Decimal]] = []
    for pk, locked in Account.objects.filter(Q(locked__gt=0) | Q(pk__in=list(cash))).values_list("pk", "locked"):
        if locked != cash.get(pk, ZERO):
            out.append(("account", pk, locked, cash.get(pk, ZERO)))
    holdings = Holding.objects.filter(Q(reserved__gt=0) | Q(account_id__in={a for a, _ in held}))
    for pk, account_id, asset, reserved in holdings.values_list("pk", "account_id", "asset", "reserved"):
        expected = held.get((account_id, asset), ZERO)
        if reserved != expected:
            out.append(("holding", pk, reserved, expected))
    return out
