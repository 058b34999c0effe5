"""GraphQL (read side) of the catalog and portfolio statistics. Resolvers call
the same selectors as REST (portfolios.catalog, portfolios.stats) and load a
list in a constant number of queries."""

from datetime import date

import graphene
from graphql import GraphQLError

from copytrading.errors import DomainError
from copytrading.graphql_types import Money
from portfolios import catalog, stats
from portfolios.models import Portfolio


def graphql_error(error: DomainError) -> GraphQLError:
    return GraphQLError(error.detail, extensions={"code": error.code, "field": error.field})


class CatalogPortfolio(graphene.ObjectType):
    """A catalog row: the portfolio and its precomputed figures for the list's line."""

    id = graphene.Int(required=True)
    name = graphene.String(required=True)
    leader = graphene.String(required=True)
    description = graphene.String(required=True)
    mode = graphene.String(required=True)
    min_investment = graphene.Decimal(required=True)
    profit_share_pct = graphene.Decimal(required=True)
    created_at = graphene.DateTime(required=True)
    line = graphene.String(required=True)
    pnl = graphene.Decimal(required=True)
    roi_pct = graphene.Decimal(required=True)
    win_rate_pct = graphene.Decimal(required=True)
    trade_count = graphene.Int(required=True)
    follower_count = graphene.Int(required=True)
    max_followers = graphene.Int(required=True)
    open_slots = graphene.Int(required=True)
    max_drawdown_pct = graphene.Decimal(required=True)
    score = graphene.Decimal(required=True)
    is_favorite = graphene.Boolean(required=True)

    @staticmethod
    def of(row, favorite_ids: set[int]) -> "CatalogPortfolio":
        p = row.portfolio
        return CatalogPortfolio(
            id=p.pk,
            name=p.name,
            leader=p.leader.username,
            description=p.description,
            mode=p.mode,
            min_investment=p.min_investment,
            profit_share_pct=p.profit_share_pct,
            created_at=p.created_at,
            line=row.line,
            pnl=row.pnl,
            roi_pct=row.roi_pct,
            win_rate_pct=row.win_rate_pct,
            trade_count=row.trade_count,
            follower_count=row.follower_count,
            max_followers=row.max_followers,
            open_slots=max(0, row.max_followers - row.follower_count),
            max_drawdown_pct=row.max_drawdown_pct,
            score=row.score,
            is_favorite=p.pk in favorite_ids,
        )


class CatalogEdge(graphene.ObjectType):
    cursor = graphene.String(required=True)
    node = graphene.Field(CatalogPortfolio, required=True)


class CatalogConnection(graphene.ObjectType):
    edges = graphene.List(graphene.NonNull(CatalogEdge), required=True)
    page_info = graphene.Field(graphene.relay.PageInfo, required=True)


class EquityPoint(graphene.ObjectType):
    day = graphene.Date(required=True)
    equity = graphene.Decimal(required=True)


class LineStats(graphene.ObjectType):
    line = graphene.String(required=True)
    pnl = graphene.Decimal(required=True)
    roi_pct = graphene.Decimal(required=True)
    win_rate_pct = graphene.Decimal(required=True)
    trade_count = graphene.Int(required=True)
    closed_count = graphene.Int(required=True)
    win_count = graphene.Int(required=True)
    follower_count = graphene.Int(required=True)
    max_drawdown_pct = graphene.Decimal(required=True)
    equity_curve = graphene.List(graphene.NonNull(EquityPoint), required=True)
    refreshed_at = graphene.DateTime(required=True)


class FollowerDay(graphene.ObjectType):
    day = graphene.Date(required=True)
    followers = graphene.Int(required=True)
    pnl = graphene.Decimal(required=True)
    roi_pct = graphene.Decimal(required=True)


class AverageFollower(graphene.ObjectType):
    followers = graphene.Int(required=True)
    pnl = graphene.Decimal(required=True)
    roi_pct = graphene.Decimal(required=True)
    series = graphene.List(graphene.NonNull(FollowerDay), required=True)


class ScorePoint(graphene.ObjectType):
    computed_at = graphene.DateTime(required=True)
    score = graphene.Decimal(required=True)
    win_rate = graphene.Decimal(required=True)
    follower_health = graphene.Decimal(required=True)
    profitability = graphene.Decimal(required=True)
    consistency = graphene.Decimal(required=True)
    activity = graphene.Decimal(required=True)
    popularity = graphene.Decimal(required=True)


class PortfolioDetail(graphene.ObjectType):
    id = graphene.Int(required=True)
    name = graphene.String(required=True)
    leader = graphene.String(required=True)
    description = graphene.String(required=True)
    mode = graphene.String(required=True)
    status = graphene.String(required=True)
    min_investment = graphene.Decimal(required=True)
    profit_share_pct = graphene.Decimal(required=True)
    created_at = graphene.DateTime(required=True)
    score = graphene.Decimal(required=True)
    equity = Money(
        required=True,
        description="The leader trading account now: balance + unrealized PnL + spot holdings at mark.",
    )
    unrealized_pnl = Money(
        required=True,
        description="Open positions at mark (each loss capped at its isolated margin) plus spot holdings at "
        "mark less their cost; the lines' pnl is realized only.",
    )
    lines = graphene.List(graphene.NonNull(LineStats), required=True)
    average_follower = graphene.Field(AverageFollower, required=True)
    score_history = graphene.List(graphene.NonNull(ScorePoint), required=True, limit=graphene.Int(default_value=84))

    @staticmethod
    def of(portfolio: Portfolio) -> "PortfolioDetail":
        body = stats.portfolio_stats(portfolio_id=portfolio.pk)
        lines = []
        for line, figures in body["lines"].items():
            curve = [EquityPoint(day=date.fromisoformat(d), equity=e) for d, e in figures.pop("equity_curve")]
            lines.append(LineStats(line=line, equity_curve=curve, **figures))
        average = body["average_follower"]
        return PortfolioDetail(
            id=portfolio.pk,
            name=portfolio.name,
            leader=portfolio.leader.username,
            description=portfolio.description,
            mode=portfolio.mode,
            status=portfolio.status,
            min_investment=portfolio.min_investment,
            profit_share_pct=portfolio.profit_share_pct,
            created_at=portfolio.created_at,
            score=body["score"],
            equity=body["equity"],
            unrealized_pnl=body["unrealized_pnl"],
            lines=lines,
            average_follower=AverageFollower(
                followers=average["followers"],
                pnl=average["pnl"],
                roi_pct=average["roi_pct"],
                series=[FollowerDay(**point) for point in average["series"]],
            ),
        )

    def resolve_score_history(self, info, limit: int):
        return stats.score_history(portfolio_id=self.id, limit=max(1, min(limit, 500)))


CATALOG_ARGUMENTS = {
    "list": graphene.String(default_value="all"),
    "mode": graphene.String(),
    **{f"{prefix}_{end}": graphene.Decimal() for prefix in catalog.RANGES for end in ("min", "max")},
    "has_open_slots": graphene.Boolean(),
    "sort": graphene.String(default_value=catalog.DEFAULT_SORT),
    "first": graphene.Int(default_value=catalog.DEFAULT_LIMIT),
    "after": graphene.String(),
}


class Query(graphene.ObjectType):
    catalog = graphene.Field(CatalogConnection, required=True, **CATALOG_ARGUMENTS)
    portfolio = graphene.Field(PortfolioDetail, id=graphene.Int(required=True))

    def resolve_catalog(self, info, first: int, after: str | None = None, **arguments):
        params = {**arguments, "limit": first, "cursor": after}
        try:
            query = catalog.catalog_query(params)
            page = catalog.catalog_page(query, info.context.user)
        except DomainError as error:
            raise graphql_error(error) from None
        edges = [
            CatalogEdge(cursor=catalog.encode_cursor(row, query), node=CatalogPortfolio.of(row, page.favorite_ids))
            for row in page.rows
        ]
        return CatalogConnection(
            edges=edges,
            page_info=graphene.relay.PageInfo(
                has_next_page=page.next_cursor is not None,
                has_previous_page=bool(after),
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    def resolve_portfolio(self, info, id: int):
        user = info.context.user
        portfolio = Portfolio.objects.select_related("leader").filter(pk=id).first()
        if portfolio is None or not (portfolio.is_public or portfolio.leader_id == user.pk):
            return None
        return PortfolioDetail.of(portfolio)
