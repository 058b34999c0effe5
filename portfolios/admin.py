"""Back office view of portfolios.

Read-only: a portfolio's settings and status change through the services
(force-close and friends arrive as admin actions that call them).
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from copytrading.admin import ReadOnlyAdmin, change_link, changelist_link
from copytrading.models import Execution, LeaderEvent, Order, Position
from portfolios.models import Portfolio


@admin.register(Portfolio)
class PortfolioAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "name",
        "leader",
        "mode",
        "status",
        "is_public",
        "min_investment",
        "profit_share_pct",
        "trading_balance",
        "trading_locked",
        "created_at",
    ]
    list_filter = ["status", "mode", "is_public", "created_at"]
    search_fields = ["=id", "name", "leader__username"]
    list_select_related = ["leader", "trading_account"]
    raw_id_fields = ["leader", "trading_account"]
    date_hierarchy = "created_at"
    readonly_fields = ["trading_account_link", "activity"]

    @admin.display(description="trading balance", ordering="trading_account__balance")
    def trading_balance(self, obj: Portfolio):
        return obj.trading_account.balance

    @admin.display(description="trading locked", ordering="trading_account__locked")
    def trading_locked(self, obj: Portfolio):
        return obj.trading_account.locked

    @admin.display(description="trading account")
    def trading_account_link(self, obj: Portfolio) -> str:
        account = obj.trading_account
        return change_link(account, f"#{account.pk}: balance {account.balance}, locked {account.locked}")

    @admin.display(description="activity")
    def activity(self, obj: Portfolio) -> str:
        # The followers app sits beside this one, so it is reached by URL name,
        # not by import.
        subscriptions = reverse("admin:followers_subscription_changelist")
        return format_html(
            "{} · {} · {} · {} · {}",
            format_html('<a href="{}?portfolio__id__exact={}">subscriptions</a>', subscriptions, obj.pk),
            changelist_link(LeaderEvent, "leader events", portfolio_id=obj.pk),
            changelist_link(Execution, "executions", portfolio_id=obj.pk),
            changelist_link(Order, "orders", account__id__exact=obj.trading_account_id),
            changelist_link(Position, "positions", account__id__exact=obj.trading_account_id),
        )
