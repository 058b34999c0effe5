"""Response shapes of the catalog, statistics and favorites endpoints."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from copytrading.serializers import MoneyField
from portfolios.serializers import PortfolioSerializer

PCT2 = {"max_digits": 16, "decimal_places": 2}
SCORE = {"max_digits": 7, "decimal_places": 6}


class CatalogStatsSerializer(serializers.Serializer):
    pnl = MoneyField()
    roi_pct = serializers.DecimalField(**PCT2)
    win_rate_pct = serializers.DecimalField(**PCT2)
    trade_count = serializers.IntegerField()
    follower_count = serializers.IntegerField()
    max_followers = serializers.IntegerField()
    max_drawdown_pct = serializers.DecimalField(**PCT2)
    score = serializers.DecimalField(**SCORE)


class CatalogItemSerializer(serializers.Serializer):
    """One row of a catalog page (a PortfolioStats row and its portfolio)."""

    id = serializers.IntegerField(source="portfolio_id")
    name = serializers.CharField(source="portfolio.name")
    leader = serializers.CharField(source="portfolio.leader.username")
    description = serializers.CharField(source="portfolio.description")
    mode = serializers.CharField(source="portfolio.mode")
    min_investment = MoneyField(source="portfolio.min_investment")
    profit_share_pct = serializers.DecimalField(max_digits=5, decimal_places=2, source="portfolio.profit_share_pct")
    created_at = serializers.DateTimeField(source="portfolio.created_at")
    line = serializers.CharField()
    stats = serializers.SerializerMethodField()
    open_slots = serializers.SerializerMethodField()
    is_favorite = serializers.SerializerMethodField()

    def get_stats(self, row) -> dict:
        return CatalogStatsSerializer(row).data

    def get_open_slots(self, row) -> int:
        return max(0, row.max_followers - row.follower_count)

    def get_is_favorite(self, row) -> bool:
        return row.portfolio_id in self.context.get("favorite_ids", ())


class CatalogPageSerializer(serializers.Serializer):
    is_page = True  # the API's page object (copytrading/paging.py)
    results = CatalogItemSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class LineStatsSerializer(serializers.Serializer):
    pnl = MoneyField()
    roi_pct = serializers.DecimalField(**PCT2)
    win_rate_pct = serializers.DecimalField(**PCT2)
    trade_count = serializers.IntegerField()
    closed_count = serializers.IntegerField()
    win_count = serializers.IntegerField()
    follower_count = serializers.IntegerField()
    max_drawdown_pct = serializers.DecimalField(**PCT2)
    equity_curve = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    refreshed_at = serializers.DateTimeField()


class FollowerDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    followers = serializers.IntegerField()
    pnl = MoneyField()
    roi_pct = serializers.DecimalField(**PCT2)


class AverageFollowerSerializer(serializers.Serializer):
    followers = serializers.IntegerField()
    pnl = MoneyField()
    roi_pct = serializers.DecimalField(**PCT2)
    series = FollowerDaySerializer(many=True)


class PortfolioStatsSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    score = serializers.DecimalField(**SCORE)
    equity = MoneyField(
        help_text="The leader trading account now: balance + open positions' unrealized PnL + spot holdings at "
        "mark (at cost without a priced primary-currency pair)."
    )
    unrealized_pnl = MoneyField(
        help_text="The leader's open positions at mark (each loss capped at its isolated margin) plus spot "
        "holdings at mark less their cost; the lines' pnl is realized only."
    )
    lines = serializers.DictField(child=LineStatsSerializer())
    average_follower = AverageFollowerSerializer()


class ScoreSerializer(serializers.Serializer):
    computed_at = serializers.DateTimeField()
    score = serializers.DecimalField(**SCORE)
    win_rate = serializers.DecimalField(**SCORE)
    follower_health = serializers.DecimalField(**SCORE)
    profitability = serializers.DecimalField(**SCORE)
    consistency = serializers.DecimalField(**SCORE)
    activity = serializers.DecimalField(**SCORE)
    popularity = serializers.DecimalField(**SCORE)


class ClosedTradeSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="ref")
    closed_at = serializers.DateTimeField(source="at")
    pnl = MoneyField()


EQUITY_HELP = (
    "The copy wallet at the current marks: balance + open positions' unrealized PnL + spot holdings at mark "
    "(at cost without a priced primary-currency pair)."
)
PNL_HELP = "Realized PnL net of the fees paid: the wallet with open positions and holdings at cost, less the money in."
UNREALIZED_HELP = (
    "Open positions at mark (each loss capped at its isolated margin) plus spot holdings at mark less their cost."
)


class FollowerStatsRowSerializer(serializers.Serializer):
    subscription = serializers.IntegerField()
    portfolio = serializers.IntegerField()
    funded = MoneyField()
    withdrawn = MoneyField()
    equity = MoneyField(help_text=EQUITY_HELP)
    pnl = MoneyField(help_text=PNL_HELP)
    unrealized_pnl = MoneyField(help_text=UNREALIZED_HELP)
    total_pnl = MoneyField(help_text="pnl + unrealized_pnl = equity + withdrawn - funded.")
    roi_pct = serializers.DecimalField(**PCT2, help_text="pnl (realized) / funded x 100, percent.")
    fees_paid = MoneyField()


class FollowerTotalSerializer(serializers.Serializer):
    funded = MoneyField()
    withdrawn = MoneyField()
    equity = MoneyField(help_text="Σ equity of the copies.")
    pnl = MoneyField(help_text=PNL_HELP)
    unrealized_pnl = MoneyField(help_text=UNREALIZED_HELP)
    total_pnl = MoneyField(help_text="pnl + unrealized_pnl.")
    roi_pct = serializers.DecimalField(**PCT2, help_text="pnl (realized) / funded x 100, percent.")
    fees_paid = MoneyField()


class FollowerStatsSerializer(serializers.Serializer):
    subscriptions = FollowerStatsRowSerializer(many=True)
    total = FollowerTotalSerializer()


class CatalogDetailSerializer(PortfolioSerializer):
    """GET catalog/{id}: the public portfolio, its statistics (context
    ``stats``) and whether the reader marked it (context ``is_favorite``)."""

    stats = serializers.SerializerMethodField()
    is_favorite = serializers.SerializerMethodField()

    class Meta(PortfolioSerializer.Meta):
        fields = [*PortfolioSerializer.Meta.fields, "stats", "is_favorite"]

    @extend_schema_field(PortfolioStatsSerializer)
    def get_stats(self, obj) -> dict:
        return PortfolioStatsSerializer(self.context["stats"]).data

    def get_is_favorite(self, obj) -> bool:
        return bool(self.context["is_favorite"])


class FavoriteSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    is_favorite = serializers.BooleanField()
