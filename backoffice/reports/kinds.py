"""One definition per report: its columns (a CSV header and the lookup it
reads), the model and the time column its range filters on, and where its
leader and portfolio live. Rows are read with ``values_list`` (no model
instances), so a report costs the same memory for ten rows or a million."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Model, Q, QuerySet

from copytrading.models import Execution, Transfer
from fees.models import FeeAccrual, LeaderWithdrawal
from followers.models import Subscription
from portfolios.models import Portfolio


class ReportFilterError(ValueError):
    """A filter the report cannot apply (e.g. a portfolio on the ledger)."""


def _by(lookup: str) -> Callable[[QuerySet], Q]:
    return lambda ids: Q(**{f"{lookup}__in": ids})


@dataclass(frozen=True)
class Report:
    kind: str
    title: str
    model: type[Model]
    time_field: str  # what --since/--until filter on
    columns: tuple[tuple[str, str], ...]  # (CSV header, lookup)
    # The rows of one leader, given a subquery of their user id.
    of_leader: Callable[[QuerySet], Q]
    portfolio_lookup: str | None  # None: the report has no portfolio

    @property
    def headers(self) -> list[str]:
        return [header for header, _ in self.columns]

    @property
    def lookups(self) -> list[str]:
        return [lookup for _, lookup in self.columns]

    def queryset(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        leader: str | None = None,
        portfolio_id: int | None = None,
        base: QuerySet | None = None,
    ) -> QuerySet:
        """The report's rows in ``[since, until)`` (and of one leader, given
        their username, or one portfolio), oldest first unless ``base`` (the
        admin's filtered list) brings its own order."""
        rows = base if base is not None else self.model._default_manager.order_by("pk")
        if since is not None:
            rows = rows.filter(**{f"{self.time_field}__gte": since})
        if until is not None:
            rows = rows.filter(**{f"{self.time_field}__lt": until})
        if leader is not None:
            rows = rows.filter(self.of_leader(get_user_model().objects.filter(username=leader).values("pk")))
        if portfolio_id is not None:
            if self.portfolio_lookup is None:
                raise ReportFilterError(f"The {self.kind} report cannot be filtered by portfolio.")
            rows = rows.filter(**{self.portfolio_lookup: portfolio_id})
        return rows


EXECUTIONS = Report(
    kind="executions",
    title="Executions",
    model=Execution,
    time_field="created_at",
    columns=(
        ("id", "id"),
        ("created_at", "created_at"),
        ("event_id", "event_id"),
        ("event_kind", "event__kind"),
        ("event_seq", "event__seq"),
        ("portfolio_id", "portfolio_id"),
        ("subscription_id", "subscription_id"),
        ("outcome", "outcome"),
        ("reason_code", "reason_code"),
        ("reason_detail", "reason_detail"),
        ("leader_quantity", "leader_quantity"),
        ("leader_fraction", "leader_fraction"),
        ("leader_price", "leader_price"),
        ("attempted_quantity", "attempted_quantity"),
        ("follower_quantity", "follower_quantity"),
        ("follower_price", "follower_price"),
        ("price_used", "price_used"),
        ("free_balance", "free_balance"),
        ("min_quantity", "min_quantity"),
        ("min_notional", "min_notional"),
        ("quantity_step", "quantity_step"),
        ("order_id", "order_id"),
    ),
    # The core knows portfolios by id only: a leader's executions are those
    # of their portfolios' events.
    of_leader=lambda ids: Q(portfolio_id__in=Portfolio.objects.filter(leader_id__in=ids).values("pk")),
    portfolio_lookup="portfolio_id",
)

FEE_ACCRUALS = Report(
    kind="fee_accruals",
    title="Fee accruals",
    model=FeeAccrual,
    time_field="accrued_at",
    columns=(
        ("id", "id"),
        ("accrued_at", "accrued_at"),
        ("status", "status"),
        ("leader", "leader_user__username"),
        ("portfolio_id", "portfolio_id"),
        ("subscription_id", "subscription_id"),
        ("follower", "copy_account__user__username"),
        ("source_position_id", "source_position_id"),
        ("source_order_id", "source_order_id"),
        ("fee_model", "fee_model"),
        ("profit", "profit"),
        ("share_pct", "share_pct"),
        ("platform_cut_pct", "platform_cut_pct"),
        ("fee_due", "fee_due"),
        ("fee", "fee"),
        ("platform_part", "platform_part"),
        ("leader_part", "leader_part"),
        ("settled_at", "settled_at"),
    ),
    of_leader=_by("leader_user_id"),
    portfolio_lookup="portfolio_id",
)

WITHDRAWALS = Report(
    kind="withdrawals",
    title="Leader withdrawals",
    model=LeaderWithdrawal,
    time_field="created_at",
    columns=(
        ("id", "id"),
        ("created_at", "created_at"),
        ("leader", "leader__username"),
        ("portfolio_id", "portfolio_id"),
        ("amount", "amount"),
        ("requested_amount", "requested_amount"),
        ("currency", "currency"),
        ("transfer_id", "transfer_id"),
    ),
    of_leader=_by("leader_id"),
    portfolio_lookup="portfolio_id",
)

TRANSFERS = Report(
    kind="transfers",
    title="Ledger transfers",
    model=Transfer,
    time_field="created_at",
    columns=(
        ("id", "id"),
        ("created_at", "created_at"),
        ("kind", "kind"),
        ("amount", "amount"),
        ("currency", "debit__currency"),
        ("debit_account_id", "debit_id"),
        ("debit_kind", "debit__kind"),
        ("debit_user", "debit__user__username"),
        ("credit_account_id", "credit_id"),
        ("credit_kind", "credit__kind"),
        ("credit_user", "credit__user__username"),
        ("ref", "ref"),
        ("idempotency_key", "idempotency_key"),
    ),
    # Money moved from or to one of the leader's accounts.
    of_leader=lambda ids: Q(debit__user_id__in=ids) | Q(credit__user_id__in=ids),
    portfolio_lookup=None,
)

SUBSCRIPTIONS = Report(
    kind="subscriptions",
    title="Subscriptions of leaders' portfolios",
    model=Subscription,
    time_field="created_at",
    columns=(
        ("id", "id"),
        ("created_at", "created_at"),
        ("leader", "portfolio__leader__username"),
        ("portfolio_id", "portfolio_id"),
        ("portfolio", "portfolio__name"),
        ("follower", "follower__username"),
        ("status", "status"),
        ("pause_reason", "pause_reason"),
        ("sizing_model", "sizing_model"),
        ("invested", "invested"),
        ("copy_wallet_balance", "copy_account__balance"),
        ("copy_wallet_locked", "copy_account__locked"),
        ("currency", "copy_account__currency"),
        ("ended_at", "ended_at"),
        ("end_reason", "end_reason"),
    ),
    of_leader=_by("portfolio__leader_id"),
    portfolio_lookup="portfolio_id",
)

REPORTS: dict[str, Report] = {r.kind: r for r in (EXECUTIONS, FEE_ACCRUALS, WITHDRAWALS, TRANSFERS, SUBSCRIPTIONS)}
