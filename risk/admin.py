"""Back-office views of the watchdog: read-only, the watchdog is their only writer."""

from django.contrib import admin

from copytrading.admin_base import MoneyColumnsMixin
from copytrading.audit.admin import AuditHistoryMixin
from risk.models import RiskEvent, RiskLimits, RiskState, WatchdogChunk, WatchdogTick


class ReadOnly(AuditHistoryMixin, MoneyColumnsMixin, admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RiskEvent)
class RiskEventAdmin(ReadOnly):
    list_display = [
        "created_at", "subscription_id", "rule", "measured", "threshold", "action", "closed_positions",
        "sold_holdings", "dust",
    ]  # fmt: skip
    list_filter = ["rule", "action", "created_at"]
    search_fields = ["=subscription_id"]


@admin.register(RiskLimits)
class RiskLimitsAdmin(ReadOnly):
    list_display = [
        "subscription_id", "daily_loss_limit_realized", "daily_loss_limit_unrealized", "margin_call_level_pct",
        "max_drawdown_pct", "max_open_positions", "max_exposure_pct", "updated_at",
    ]  # fmt: skip
    search_fields = ["=subscription_id"]


@admin.register(RiskState)
class RiskStateAdmin(ReadOnly):
    list_display = ["subscription_id", "copy_account_id", "peak_equity", "paused_by_rule", "paused_at"]
    list_filter = ["paused_by_rule"]
    search_fields = ["=subscription_id"]


class WatchdogChunkInline(admin.TabularInline):
    model = WatchdogChunk
    extra = 0
    can_delete = False
    fields = ["index", "first_subscription_id", "last_subscription_id", "status", "checked", "breaches", "processed_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WatchdogTick)
class WatchdogTickAdmin(ReadOnly):
    list_display = ["number", "started_at", "completed_at", "chunk_count", "subscription_count"]
    inlines = [WatchdogChunkInline]


@admin.register(WatchdogChunk)
class WatchdogChunkAdmin(ReadOnly):
    list_display = ["tick", "index", "first_subscription_id", "last_subscription_id", "status", "checked", "breaches"]
    list_filter = ["status"]
