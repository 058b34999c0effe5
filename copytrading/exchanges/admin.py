"""Linked exchange accounts in the back office: read-only, the key masked
(``abcd…wxyz``), no encrypted column shown or searchable; one action unlinks
through the service, which wipes the credentials first (registered by
copytrading/admin.py)."""

from django.contrib import admin
from django.http import HttpRequest

from copytrading.admin_base import ReadOnlyAdmin
from copytrading.audit.admin import AuditHistoryMixin
from copytrading.exchanges.models import (
    ExchangeAccount,
    ExchangeDrift,
    ExchangeOrder,
    LeaderTradeCursor,
    LeaderTradePoll,
)
from copytrading.exchanges.services import exchange_account_delete

SECRET_COLUMNS = ["api_key_encrypted", "secret_encrypted", "passphrase_encrypted", "api_key_fingerprint"]


class ExchangeAccountAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["id", "user", "exchange", "label", "api_key_hint", "status", "last_validated_at", "created_at"]
    list_filter = ["exchange", "status"]
    search_fields = ["user__username", "label"]
    list_select_related = ["user"]
    exclude = SECRET_COLUMNS
    readonly_fields = ["user", "exchange", "label", "api_key_hint", "status", "permissions", "created_at",
                       "last_validated_at"]  # fmt: skip
    show_full_result_count = False
    actions = ["unlink"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # Django's delete would skip the wipe: the action below instead

    def has_unlink_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("copytrading.delete_exchangeaccount")

    @admin.action(description="Unlink the selected accounts (credentials wiped)", permissions=["unlink"])
    def unlink(self, request: HttpRequest, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        for account_id in ids:
            exchange_account_delete(account_id=account_id)
        self.message_user(request, f"{len(ids)} exchange account(s) unlinked.")


class ExchangeOrderAdmin(ReadOnlyAdmin):
    """Orders sent to exchanges: what was sent, what the exchange said, and
    when (decided → submitted → acknowledged → filled)."""

    show_full_result_count = False

    list_display = ["id", "client_order_id", "exchange_account", "symbol", "side", "quantity", "status",
                    "filled_quantity", "average_price", "reject_code", "attempts", "decided_at", "submitted_at",
                    "acknowledged_at", "filled_at"]  # fmt: skip
    list_filter = ["status", "reject_code"]
    search_fields = ["=client_order_id", "=exchange_order_id", "exchange_account__user__username"]
    list_select_related = ["exchange_account"]
    autocomplete_fields = ["exchange_account", "order"]


class ExchangeDriftAdmin(ReadOnlyAdmin):
    """What the exchange reconciliation found (copytrading/exchanges/reconciliation.py):
    open drifts first, each with what was repaired."""

    show_full_result_count = False

    list_display = ["id", "code", "subject", "account", "exchange_account", "subscription_id", "service_quantity",
                    "exchange_quantity", "repair", "repair_error", "seen_count", "first_seen_at", "last_seen_at",
                    "resolved_at"]  # fmt: skip
    list_filter = ["code", "repair", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["=subject", "=subscription_id", "exchange_account__user__username"]
    list_select_related = ["exchange_account"]
    autocomplete_fields = ["account", "exchange_account"]
    ordering = ["-id"]


class LeaderTradePollAdmin(ReadOnlyAdmin):
    """Leaders' trading accounts bound to their exchange accounts, as the
    trade poller sees them (portfolios/exchange.py): when bound, when last read."""

    show_full_result_count = False

    list_display = ["id", "account", "bound_at", "polled_at"]
    search_fields = ["=id", "=account__id"]
    autocomplete_fields = ["account"]


class LeaderTradeCursorAdmin(ReadOnlyAdmin):
    """How far each bound account's trades have become leader events, per symbol."""

    show_full_result_count = False

    list_display = ["id", "poll", "symbol", "last_trade_ms", "last_trade_id"]
    search_fields = ["=symbol"]
    autocomplete_fields = ["poll"]


def register(site: admin.AdminSite) -> None:
    site.register(ExchangeAccount, ExchangeAccountAdmin)
    site.register(ExchangeOrder, ExchangeOrderAdmin)
    site.register(ExchangeDrift, ExchangeDriftAdmin)
    site.register(LeaderTradePoll, LeaderTradePollAdmin)
    site.register(LeaderTradeCursor, LeaderTradeCursorAdmin)
