"""The fee flow's own books, checked against the ledger (``check_fees``).

``check_ledger`` already proves Σ = 0 and no negative balance for every
account, FEE_ESCROW included. This adds what only the fees app knows:
escrow holds exactly the unsettled fees, the platform's account exactly the
settled platform parts, and each leader profit account exactly its settled
leader parts less its withdrawals.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import QuerySet

from copytrading.models import Account, AccountKind, Transfer, TransferKind
from copytrading.money import Q8, ZERO
from fees.models import AccrualStatus, FeeAccrual, LeaderProfitAccount, LeaderWithdrawal
from fees.selectors import _exact_sum, _money


@dataclass
class FeeBooksReport:
    escrow: tuple[Decimal, Decimal] = (ZERO, ZERO)  # (balance, unsettled fees)
    platform: tuple[Decimal, Decimal] = (ZERO, ZERO)  # (fee transfers to the platform, settled platform parts)
    charged: tuple[Decimal, Decimal] = (ZERO, ZERO)  # (PROFIT_SHARE transfers, Σ accrual fees)
    leader_mismatches: list[tuple[int, Decimal, Decimal]] = field(default_factory=list)  # (portfolio, balance, due)

    @property
    def ok(self) -> bool:
        pairs = (self.escrow, self.platform, self.charged)
        return all(a == b for a, b in pairs) and not self.leader_mismatches


def _sum(rows: QuerySet, column: str) -> Decimal:
    return _money(rows.aggregate(s=_exact_sum(column))["s"])


def _q(value: Decimal | None) -> Decimal:
    """A stored balance (a decimal, unlike the integer units of an exact sum)."""
    return (value or ZERO).quantize(Q8)


def _balance(kind: str) -> Decimal:
    account = Account.objects.filter(kind=kind).first()
    return _q(account.balance if account else None)


def fee_books_check() -> FeeBooksReport:
    accruals = FeeAccrual.objects.all()
    settled = accruals.filter(status=AccrualStatus.SETTLED)
    report = FeeBooksReport(
        escrow=(_balance(AccountKind.FEE_ESCROW), _sum(accruals.exclude(status=AccrualStatus.SETTLED), "fee")),
        platform=(
            _sum(Transfer.objects.filter(kind=TransferKind.FEE_SETTLE_PLATFORM), "amount"),
            _sum(settled, "platform_part"),
        ),
        charged=(_sum(Transfer.objects.filter(kind=TransferKind.PROFIT_SHARE), "amount"), _sum(accruals, "fee")),
    )
    earned = dict(
        settled.order_by().values("portfolio_id").annotate(s=_exact_sum("leader_part")).values_list("portfolio_id", "s")
    )
    withdrawn = dict(
        LeaderWithdrawal.objects.order_by()
        .values("portfolio_id")
        .annotate(s=_exact_sum("amount"))
        .values_list("portfolio_id", "s")
    )
    for portfolio_id, balance in LeaderProfitAccount.objects.values_list("portfolio_id", "account__balance"):
        due = _money(earned.get(portfolio_id)) - _money(withdrawn.get(portfolio_id))
        if _q(balance) != due:
            report.leader_mismatches.append((portfolio_id, _q(balance), due))
    return report
