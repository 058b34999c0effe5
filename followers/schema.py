"""GraphQL: the signed-in follower's subscriptions with their results."""

import graphene

from followers.selectors import subscriptions_of
from portfolios.stats import follower_stats


class SubscriptionResult(graphene.ObjectType):
    funded = graphene.Decimal(required=True)
    withdrawn = graphene.Decimal(required=True)
    equity = graphene.Decimal(required=True)
    pnl = graphene.Decimal(required=True)
    roi_pct = graphene.Decimal(required=True)
    fees_paid = graphene.Decimal(required=True)


class MySubscription(graphene.ObjectType):
    id = graphene.Int(required=True)
    portfolio_id = graphene.Int(required=True)
    portfolio_name = graphene.String(required=True)
    status = graphene.String(required=True)
    sizing_model = graphene.String(required=True)
    copy_margin = graphene.Boolean(required=True)
    copy_spot = graphene.Boolean(required=True)
    created_at = graphene.DateTime(required=True)
    result = graphene.Field(SubscriptionResult, required=True)


class Query(graphene.ObjectType):
    my_subscriptions = graphene.List(graphene.NonNull(MySubscription), required=True)

    def resolve_my_subscriptions(self, info):
        user = info.context.user
        if not user.is_authenticated:
            return []
        subscriptions = list(subscriptions_of(user).order_by("pk"))
        # Every wallet's figures in one batch (constant queries for any count).
        figures = follower_stats([(s.pk, s.portfolio_id, s.copy_account_id) for s in subscriptions])
        results = {row["subscription"]: row for row in figures["subscriptions"]}
        return [
            MySubscription(
                id=s.pk,
                portfolio_id=s.portfolio_id,
                portfolio_name=s.portfolio.name,
                status=s.status,
                sizing_model=s.sizing_model,
                copy_margin=s.copy_margin,
                copy_spot=s.copy_spot,
                created_at=s.created_at,
                result=SubscriptionResult(
                    **{k: v for k, v in results[s.pk].items() if k not in ("subscription", "portfolio")}
                ),
            )
            for s in subscriptions
        ]
