"""Set-based loaders behind statistics and ranking: a constant number of
queries per batch of portfolios or copy wallets, never one per portfolio.

Subscriptions live in ``followers``, which sits above this app: followers
registers a ``FollowerSource`` (apps.py), the way the core reads them."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from django.db import connection
from django.db.models import BigIntegerField, Count, F, QuerySet, Sum
from django.db.models.functions import Cast, Round

from copytrading.models import (
    Account,
    AccountKind,
    Holding,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Product,
    Transfer,
    TransferKind,
)
from copytrading.money import Q8, ZERO
from fees.models import FeeAccrual
from portfolios.performance import ClosedTrade, SpotFill, pct, spot_realized

# Transfers that are trading, not money put in or taken out.
TRADING_KINDS = (TransferKind.REALIZED_PNL, TransferKind.SPOT_TRADE, TransferKind.TRADING_FEE)


@dataclass(frozen=True, slots=True)
class FollowerRow:
    subscription_id: int
    portfolio_id: int
    follower_id: int
    copy_account_id: int
    created_at: datetime


class FollowerSource(Protocol):
    def live_followers(self, portfolio_ids: Sequence[int] | QuerySet) -> list[FollowerRow]:
        """The active and paused subscriptions of these portfolios."""

    def live_copy_accounts(self, portfolio_ids: QuerySet) -> QuerySet:
        """Their copy wallet ids, as a subquery (no id list travels)."""


_follower_source: FollowerSource | None = None


def register_follower_source(source: FollowerSource) -> None:
    global _follower_source
    _follower_source = source


def live_followers(portfolio_ids: Sequence[int] | QuerySet) -> list[FollowerRow]:
    if _follower_source is None or (not isinstance(portfolio_ids, QuerySet) and not portfolio_ids):
        return []
    return _follower_source.live_followers(portfolio_ids)


def live_copy_accounts(portfolio_ids: QuerySet) -> QuerySet | list[int]:
    if _follower_source is None:
        return []
    return _follower_source.live_copy_accounts(portfolio_ids)


# --- the leader's trading account ----------------------------------------------------


@dataclass
class AccountActivity:
    """Everything the statistics need of one leader trading account."""

    capital_flows: list[tuple[datetime, Decimal]] = field(default_factory=list)
    margin_pnl: list[tuple[datetime, Decimal]] = field(default_factory=list)
    margin_closed: list[ClosedTrade] = field(default_factory=list)
    spot_closed: list[ClosedTrade] = field(default_factory=list)
    margin_trades: int = 0
    spot_trades: int = 0

    @property
    def capital(self) -> Decimal:
        return sum((amount for _, amount in self.capital_flows), ZERO)

    @property
    def spot_pnl(self) -> list[tuple[datetime, Decimal]]:
        return [(t.at, t.pnl) for t in self.spot_closed]


def _signed_transfers(account_ids: list[int], *, kinds=None, exclude_kinds=None, since=None):
    """(account, at, signed amount) of the transfers touching ``account_ids``:
    two index lookups (credit side, debit side) rather than one OR."""
    for side, sign in (("credit_id", 1), ("debit_id", -1)):
        rows = Transfer.objects.filter(**{f"{side}__in": account_ids})
        if kinds is not None:
            rows = rows.filter(kind__in=kinds)
        if exclude_kinds is not None:
            rows = rows.exclude(kind__in=exclude_kinds)
        if since is not None:
            rows = rows.filter(created_at__gte=since)
        for account_id, at, amount in rows.values_list(side, "created_at", "amount"):
            yield account_id, at, amount * sign


def accounts_activity(account_ids: list[int], *, since: datetime | None = None) -> dict[int, AccountActivity]:
    """Capital, realized PnL events, closed trades and trade counts of leader
    accounts; with ``since``, only what happened from then on (capital is
    always the whole history: it is the base of returns)."""
    result = {account_id: AccountActivity() for account_id in account_ids}
    if not account_ids:
        return result
    for account_id, at, amount in _signed_transfers(account_ids, exclude_kinds=TRADING_KINDS):
        result[account_id].capital_flows.append((at, amount))
    for account_id, at, amount in _signed_transfers(account_ids, kinds=[TransferKind.REALIZED_PNL], since=since):
        result[account_id].margin_pnl.append((at, amount))

    closed = Position.objects.filter(
        account_id__in=account_ids, status=PositionStatus.CLOSED, leader_position__isnull=True
    )
    if since is not None:
        closed = closed.filter(closed_at__gte=since)
    for account_id, pk, closed_at, pnl in closed.values_list("account_id", "pk", "closed_at", "realized_pnl"):
        result[account_id].margin_closed.append(ClosedTrade(pk, closed_at, pnl))

    filled = Order.objects.filter(account_id__in=account_ids, status=OrderStatus.FILLED)
    counted = filled.filter(created_at__gte=since) if since is not None else filled
    for account_id, product, count in (
        counted.values("account_id", "instrument__product")
        .annotate(n=Count("id"))
        .values_list("account_id", "instrument__product", "n")
        .order_by()
    ):
        if product == Product.SPOT:
            result[account_id].spot_trades = count
        else:
            result[account_id].margin_trades = count

    # Spot realized PnL is not stored per sell: replay the account's spot fills
    # (the whole history: the cost basis of a sell depends on every earlier buy).
    fills: dict[int, list[SpotFill]] = defaultdict(list)
    for account_id, pk, at, asset, side, quantity, price in (
        filled.filter(instrument__product=Product.SPOT)
        .order_by("pk")
        .values_list("account_id", "pk", "created_at", "instrument__base", "side", "quantity", "price")
    ):
        fills[account_id].append(SpotFill(pk, at, asset, side, quantity, price))
    for account_id, account_fills in fills.items():
        trades = spot_realized(account_fills)
        if since is not None:
            trades = [t for t in trades if t.at >= since]
        result[account_id].spot_closed = trades
    return result


# --- copy wallets ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WalletFigures:
    """A copy wallet's result: realized PnL net of the fees it paid (open
    positions and holdings count at what they cost, not at the mark)."""

    funded: Decimal  # everything that came in from the owner (main wallet, or outside)
    withdrawn: Decimal  # everything that went back
    equity: Decimal  # cash + spot holdings at cost
    fees_paid: Decimal
    pnl: Decimal
    roi_pct: Decimal


# Where a copy wallet's own money comes from and goes back to.
OWNER_KINDS = (AccountKind.MAIN, AccountKind.EXTERNAL)


def exact_sum(field: str):
    """SUM that is exact on every database: SQLite would add decimals as binary
    floats, so there whole units of 1e-8 are summed as integers (as in fees)."""
    if connection.vendor == "sqlite":
        return Sum(Cast(Round(F(field) * 10**8), output_field=BigIntegerField()))
    return Sum(field)


def exact_value(value, *, sqlite: bool) -> Decimal:
    if value is None:
        return ZERO
    if sqlite:
        return Decimal(int(value)).scaleb(-8).quantize(Q8)
    return Decimal(value)


def sums_by(rows: QuerySet, key: str, field: str) -> dict[int, Decimal]:
    """{key: exact SUM(field)} grouped in the database: one row per key."""
    grouped = rows.values(key).annotate(total=exact_sum(field)).values_list(key, "total").order_by()
    totals: dict[int, Decimal] = defaultdict(lambda: ZERO)
    sqlite = connection.vendor == "sqlite"
    for k, total in grouped:
        totals[k] = exact_value(total, sqlite=sqlite)
    return totals


def wallet_figures(account_ids: Iterable[int] | QuerySet) -> dict[int, WalletFigures]:
    """Figures of copy wallets: ``account_ids`` is a list or a subquery of ids
    (5 grouped queries, one row per wallet each)."""
    ids = account_ids if isinstance(account_ids, QuerySet) else list(account_ids)
    if not isinstance(ids, QuerySet) and not ids:
        return {}
    funded = sums_by(Transfer.objects.filter(credit_id__in=ids, debit__kind__in=OWNER_KINDS), "credit_id", "amount")
    withdrawn = sums_by(Transfer.objects.filter(debit_id__in=ids, credit__kind__in=OWNER_KINDS), "debit_id", "amount")
    basis = sums_by(Holding.objects.filter(account_id__in=ids), "account_id", "cost_basis")
    fees = sums_by(FeeAccrual.objects.filter(copy_account_id__in=ids), "copy_account_id", "fee")
    result = {}
    for account_id, balance in Account.objects.filter(pk__in=ids).values_list("pk", "balance"):
        equity = balance + basis[account_id]
        pnl = equity + withdrawn[account_id] - funded[account_id]
        result[account_id] = WalletFigures(
            funded=funded[account_id],
            withdrawn=withdrawn[account_id],
            equity=equity,
            fees_paid=fees[account_id],
            pnl=pnl,
            roi_pct=pct(pnl, funded[account_id]),
        )
    return result
