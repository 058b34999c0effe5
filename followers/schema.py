"""GraphQL: the signed-in follower's subscriptions with their results, their
figures at the current marks and their open positions and spot holdings."""

from collections import defaultdict
from functools import cached_property

import graphene

from copytrading import valuation
from copytrading.graphql_types import Money
from copytrading.models import Holding, Position, PositionStatus
from copytrading.selectors import primary_pairs
from followers.selectors import copy_snapshots, subscriptions_of
from portfolios.stats import follower_stats


class SubscriptionResult(graphene.ObjectType):
    funded = graphene.Decimal(required=True)
    withdrawn = graphene.Decimal(required=True)
    equity = graphene.Decimal(required=True, description="At the current marks.")
    pnl = graphene.Decimal(required=True, description="Realized, net of fees.")
    unrealized_pnl = Money(required=True, description="Open positions and spot holdings at mark.")
    total_pnl = Money(required=True, description="pnl + unrealizedPnl.")
    roi_pct = graphene.Decimal(required=True)
    fees_paid = graphene.Decimal(required=True)


class CopyFigures(graphene.ObjectType):
    """The copy at the current marks: the REST subscription's ``figures``."""

    balance = Money(required=True)
    equity = Money(required=True)
    unrealized_pnl = Money(required=True)
    realized_pnl = Money(required=True)
    total_pnl = Money(required=True)
    roi_pct = graphene.Decimal(required=True)
    margin_level_pct = Money()
    realized_loss_today = Money(required=True)
    unrealized_loss = Money(required=True)
    daily_loss_limit_realized = Money()
    daily_loss_headroom_realized = Money()
    daily_loss_limit_unrealized = Money()
    daily_loss_headroom_unrealized = Money()


class MirrorPosition(graphene.ObjectType):
    """An open mirror at the instrument's current mark."""

    id = graphene.Int(required=True)
    symbol = graphene.String(required=True)
    side = graphene.String(required=True)
    quantity = Money(required=True)
    entry_price = Money(required=True)
    margin = Money(required=True)
    mark_price = Money()
    unrealized_pnl = Money(description="Loss capped at the isolated margin, as the watchdog counts it.")
    notional = Money()
    margin_level_pct = Money()


class SpotHolding(graphene.ObjectType):
    asset = graphene.String(required=True)
    quantity = Money(required=True)
    cost_basis = Money(required=True)
    mark_price = Money(description="Of the primary-currency pair; null without one.")
    value = Money(required=True, description="At mark, or at cost without a mark.")
    unrealized_pnl = Money(description="Null (not 0) without a mark.")


class MySubscription(graphene.ObjectType):
    id = graphene.Int(required=True)
    portfolio_id = graphene.Int(required=True)
    portfolio_name = graphene.String(required=True)
    status = graphene.String(required=True)
    pause_reason = graphene.String(required=True)
    sizing_model = graphene.String(required=True)
    copy_margin = graphene.Boolean(required=True)
    copy_spot = graphene.Boolean(required=True)
    created_at = graphene.DateTime(required=True)
    result = graphene.Field(SubscriptionResult, required=True)
    figures = graphene.Field(CopyFigures, required=True)
    positions = graphene.List(graphene.NonNull(MirrorPosition), required=True)
    holdings = graphene.List(graphene.NonNull(SpotHolding), required=True)

    # Each part is loaded for every subscription at once, on first request
    # (``_batch`` is set by the query's resolver).
    def resolve_result(self, info):
        row = self._batch.results[self.id]
        return SubscriptionResult(**{k: v for k, v in row.items() if k not in ("subscription", "portfolio")})

    def resolve_figures(self, info):
        return _figures(self._batch.snapshots[self.id])

    def resolve_positions(self, info):
        return self._batch.books[0][self._account_id]

    def resolve_holdings(self, info):
        return self._batch.books[1][self._account_id]


def _mirror(position: Position) -> MirrorPosition:
    v = valuation.position_value(
        side=position.side,
        quantity=position.quantity,
        entry_price=position.entry_price,
        margin=position.margin,
        mark=position.instrument.mark_price,
    )
    return MirrorPosition(
        id=position.pk,
        symbol=position.instrument.symbol,
        side=position.side,
        quantity=position.quantity,
        entry_price=position.entry_price,
        margin=position.margin,
        mark_price=v.mark_price,
        unrealized_pnl=v.unrealized_pnl,
        notional=v.notional,
        margin_level_pct=v.margin_level_pct,
    )


def _open_books(account_ids: list[int]) -> tuple[dict, dict]:
    """Open positions and spot holdings of the wallets, valued at the marks
    (3 queries for any number of wallets)."""
    positions: dict[int, list[MirrorPosition]] = defaultdict(list)
    for position in (
        Position.objects.filter(account_id__in=account_ids, status=PositionStatus.OPEN)
        .select_related("instrument")
        .order_by("pk")
    ):
        positions[position.account_id].append(_mirror(position))
    holdings: dict[int, list[SpotHolding]] = defaultdict(list)
    rows = list(Holding.objects.filter(account_id__in=account_ids, quantity__gt=0).order_by("account_id", "asset"))
    marks = {asset: mark for asset, (mark, _) in primary_pairs(h.asset for h in rows).items()}
    for h in rows:
        v = valuation.holding_value(quantity=h.quantity, cost_basis=h.cost_basis, mark=marks.get(h.asset))
        holdings[h.account_id].append(
            SpotHolding(
                asset=h.asset,
                quantity=h.quantity,
                cost_basis=h.cost_basis,
                mark_price=v.mark_price,
                value=v.value,
                unrealized_pnl=v.unrealized_pnl,
            )
        )
    return positions, holdings


class _Batch:
    """The follower's subscriptions, each part loaded set-based for all of
    them at once and only when a query asks for it."""

    def __init__(self, subscriptions):
        self.subscriptions = subscriptions
        self.accounts = [s.copy_account_id for s in subscriptions]

    @cached_property
    def results(self) -> dict:
        figures = follower_stats([(s.pk, s.portfolio_id, s.copy_account_id) for s in self.subscriptions])
        return {row["subscription"]: row for row in figures["subscriptions"]}

    @cached_property
    def snapshots(self) -> dict:
        return copy_snapshots(self.subscriptions)

    @cached_property
    def books(self) -> tuple[dict, dict]:
        return _open_books(self.accounts)


class Query(graphene.ObjectType):
    my_subscriptions = graphene.List(graphene.NonNull(MySubscription), required=True)

    def resolve_my_subscriptions(self, info):
        user = info.context.user
        if not user.is_authenticated:
            return []
        subscriptions = list(subscriptions_of(user).order_by("pk"))
        batch = _Batch(subscriptions)
        rows = []
        for s in subscriptions:
            row = MySubscription(
                id=s.pk,
                portfolio_id=s.portfolio_id,
                portfolio_name=s.portfolio.name,
                status=s.status,
                pause_reason=s.pause_reason,
                sizing_model=s.sizing_model,
                copy_margin=s.copy_margin,
                copy_spot=s.copy_spot,
                created_at=s.created_at,
            )
            row._batch, row._account_id = batch, s.copy_account_id
            rows.append(row)
        return rows


def _figures(snapshot) -> CopyFigures:
    return CopyFigures(**{name: getattr(snapshot, name) for name in CopyFigures._meta.fields})
