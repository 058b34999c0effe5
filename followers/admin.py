"""Back office view of subscriptions (the follower drill-down starts here).

Read-only: pause, resume, top-up and unfollow move money or change what gets
copied, so they go through the services (admin actions will call them).
"""

from django.contrib import admin
from django.utils.html import format_html

from copytrading import sizing
from copytrading.admin import ReadOnlyAdmin, change_link, changelist_link
from copytrading.models import Execution, Holding, Order, Position
from followers.models import Subscription


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "follower",
        "portfolio_link",
        "status",
        "pause_reason",
        "sizing_model",
        "sizing_parameter",
        "wallet_balance",
        "wallet_locked",
        "invested",
        "created_at",
    ]
    list_filter = ["status", "sizing_model", "copy_margin", "copy_spot", "created_at"]
    search_fields = ["=id", "follower__username", "=portfolio__id", "portfolio__name"]
    # One query for the page: the wallet columns read the joined copy account.
    list_select_related = ["follower", "portfolio", "copy_account"]
    raw_id_fields = ["follower", "portfolio", "copy_account"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = ["sizing_parameter", "copy_wallet", "activity"]

    @admin.display(description="portfolio", ordering="portfolio__name")
    def portfolio_link(self, obj: Subscription) -> str:
        return change_link(obj.portfolio)

    @admin.display(description="sizing parameter")
    def sizing_parameter(self, obj: Subscription) -> str:
        field = sizing.PARAMETER_RANGES[obj.sizing_model][0]
        return f"{field}={getattr(obj, field)}"

    @admin.display(description="wallet balance", ordering="copy_account__balance")
    def wallet_balance(self, obj: Subscription):
        return obj.copy_account.balance

    @admin.display(description="wallet locked", ordering="copy_account__locked")
    def wallet_locked(self, obj: Subscription):
        return obj.copy_account.locked

    @admin.display(description="copy wallet")
    def copy_wallet(self, obj: Subscription) -> str:
        wallet = obj.copy_account
        return change_link(
            wallet, f"#{wallet.pk}: balance {wallet.balance}, locked {wallet.locked}, free {wallet.free}"
        )

    @admin.display(description="activity")
    def activity(self, obj: Subscription) -> str:
        return format_html(
            "{} · {} · {} · {}",
            changelist_link(Execution, "executions", subscription_id=obj.pk),
            changelist_link(Position, "positions", account__id__exact=obj.copy_account_id),
            changelist_link(Holding, "holdings", account__id__exact=obj.copy_account_id),
            changelist_link(Order, "orders", account__id__exact=obj.copy_account_id),
        )
