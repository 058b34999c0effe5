"""Back office pages of statistics, scores and favorites (read-only: the
refresh and the ranking write them; favorites are the users' own)."""

from django.contrib import admin

from copytrading.admin import ReadOnlyAdmin
from portfolios.models import Favorite, FollowerDailyStats, PortfolioScore, PortfolioStats


@admin.register(PortfolioStats)
class PortfolioStatsAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "portfolio", "line", "score", "pnl", "roi_pct", "win_rate_pct", "trade_count", "follower_count",
        "max_drawdown_pct", "refreshed_at",
    ]  # fmt: skip
    list_filter = ["line"]
    search_fields = ["=portfolio__id", "portfolio__name"]
    list_select_related = ["portfolio"]
    autocomplete_fields = ["portfolio"]


@admin.register(PortfolioScore)
class PortfolioScoreAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "portfolio", "computed_at", "score", "win_rate", "follower_health", "profitability", "consistency",
        "activity", "popularity",
    ]  # fmt: skip
    search_fields = ["=portfolio__id", "portfolio__name"]
    list_select_related = ["portfolio"]
    autocomplete_fields = ["portfolio"]
    date_hierarchy = "computed_at"


@admin.register(FollowerDailyStats)
class FollowerDailyStatsAdmin(ReadOnlyAdmin):
    list_display = ["id", "portfolio", "day", "followers", "average_pnl", "average_roi_pct", "updated_at"]
    search_fields = ["=portfolio__id", "portfolio__name"]
    list_select_related = ["portfolio"]
    autocomplete_fields = ["portfolio"]


@admin.register(Favorite)
class FavoriteAdmin(ReadOnlyAdmin):
    list_display = ["id", "user", "portfolio", "created_at"]
    search_fields = ["user__username", "=portfolio__id", "portfolio__name"]
    list_select_related = ["user", "portfolio"]
    autocomplete_fields = ["user", "portfolio"]
