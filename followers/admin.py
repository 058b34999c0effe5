"""Back office view of subscriptions (the follower drill-down starts here).

Read-only: pause, resume and unfollow move money or change what gets copied,
so the admin actions call the same services as the follower's API.
"""

from django.contrib import admin, messages
from django.utils.html import format_html

from copytrading import sizing
from copytrading.admin import ReadOnlyAdmin, change_link, changelist_link
from copytrading.admin_base import money_html
from copytrading.errors import DomainError
from copytrading.models import Execution, Holding, Order, Position
from followers import services
from followers.models import Subscription

PAUSED_BY_STAFF = "staff"


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "follower",
        "portfolio_link",
        "status",
        "pause_reason",
        "end_reason",
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
    autocomplete_fields = ["follower", "portfolio", "copy_account"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = ["sizing_parameter", "copy_wallet", "activity"]
    actions = ["pause_selected", "resume_selected", "unfollow_selected"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_lifecycle_permission(self, request) -> bool:
        return request.user.has_perm("followers.change_subscription")

    def _each(self, request, queryset, action, done_message: str) -> None:
        done = 0
        for subscription in queryset.order_by("pk"):
            try:
                action(subscription)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"#{subscription.pk}: {exc.detail}", messages.ERROR)
        self.message_user(request, f"{done} subscription(s) {done_message}.", messages.SUCCESS)

    @admin.action(description="Pause the selected copies", permissions=["lifecycle"])
    def pause_selected(self, request, queryset):
        self._each(
            request, queryset, lambda s: services.subscription_pause(subscription=s, reason=PAUSED_BY_STAFF), "paused"
        )

    @admin.action(description="Resume the selected copies", permissions=["lifecycle"])
    def resume_selected(self, request, queryset):
        self._each(request, queryset, lambda s: services.subscription_resume(subscription=s), "resumed")

    @admin.action(description="Unfollow: close mirrors, return the wallets", permissions=["lifecycle"])
    def unfollow_selected(self, request, queryset):
        reason = f"ended by staff ({request.user.get_username()})"
        self._each(request, queryset, lambda s: services.subscription_unfollow(subscription=s, reason=reason), "ended")

    @admin.display(description="portfolio", ordering="portfolio__name")
    def portfolio_link(self, obj: Subscription) -> str:
        return change_link(obj.portfolio)

    @admin.display(description="sizing parameter")
    def sizing_parameter(self, obj: Subscription) -> str:
        field = sizing.PARAMETER_RANGES[obj.sizing_model][0]
        return f"{field}={getattr(obj, field)}"

    @admin.display(description="wallet balance", ordering="copy_account__balance")
    def wallet_balance(self, obj: Subscription):
        return money_html(obj.copy_account.balance, obj.copy_account.currency)

    @admin.display(description="wallet locked", ordering="copy_account__locked")
    def wallet_locked(self, obj: Subscription):
        return money_html(obj.copy_account.locked, obj.copy_account.currency)

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
