"""Back office for fees: groups and leader assignments are editable; accruals,
their audit trail and withdrawals are read-only, with one action that
re-runs a stuck accrual's settlement through the service."""

from datetime import timedelta

from django.contrib import admin, messages
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from copytrading.admin import ReadOnlyAdmin, ReadOnlyInline, change_link
from copytrading.admin_base import LeaderFilter
from copytrading.audit.admin import AuditHistoryMixin
from fees import selectors, services
from fees.admin_earnings import amount
from fees.models import (
    AccrualStatus,
    FeeAccrual,
    FeeAuditEntry,
    FeeGroup,
    HighWaterMark,
    LeaderGroupAssignment,
    LeaderProfitAccount,
    LeaderWithdrawal,
    LimitsGroup,
)

STUCK_AFTER = timedelta(minutes=5)


@admin.register(FeeGroup)
class FeeGroupAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["name", "max_profit_share_pct", "platform_cut_pct", "is_default", "updated_at"]
    search_fields = ["name"]


@admin.register(LimitsGroup)
class LimitsGroupAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["name", "max_followers", "max_profit_share_pct", "is_default", "updated_at"]
    search_fields = ["name"]


@admin.register(LeaderGroupAssignment)
class LeaderGroupAssignmentAdmin(AuditHistoryMixin, admin.ModelAdmin):
    list_display = ["leader", "fee_group", "limits_group", "assigned_by", "assigned_at"]
    list_select_related = ["leader", "fee_group", "limits_group", "assigned_by"]
    list_filter = ["fee_group", "limits_group"]
    search_fields = ["leader__username"]
    autocomplete_fields = ["leader"]
    fields = ["leader", "fee_group", "limits_group"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ["leader"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        # Through the service, so the acting staff member is recorded.
        assignment = services.leader_group_assign(
            leader=obj.leader, fee_group=obj.fee_group, limits_group=obj.limits_group, actor=request.user
        )
        obj.pk = assignment.pk


class StuckFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", "Stuck (failed, or unsettled for 5 min)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(
                Q(status=AccrualStatus.FAILED)
                | Q(status=AccrualStatus.ACCRUED, accrued_at__lt=timezone.now() - STUCK_AFTER)
            )
        return queryset


class AuditInline(ReadOnlyInline):
    model = FeeAuditEntry
    fields = ["created_at", "action", "actor", "detail"]
    readonly_fields = fields
    show_change_link = False


@admin.register(FeeAccrual)
class FeeAccrualAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "accrued_at", "status", "leader_user", "portfolio_id", "subscription_id", "source", "fee_model",
        "profit", "share_pct", "fee", "fee_due", "platform_part", "leader_part", "attempts", "settled_at",
    ]  # fmt: skip
    list_select_related = ["leader_user"]
    list_filter = [LeaderFilter.on("leader_user"), StuckFilter, "status", "fee_model", "accrued_at"]
    # ?portfolio_id=<id> filters by portfolio too (a plain column lookup).
    search_fields = ["=portfolio_id", "=subscription_id", "=source_position__id", "=source_order__id"]
    date_hierarchy = "accrued_at"
    readonly_fields = ["position_link", "order_link", "copy_account_link"]
    exclude = ["source_position", "source_order", "copy_account"]
    inlines = [AuditInline]
    actions = ["resolve_stuck"]

    def changelist_view(self, request, extra_context=None):
        """The list, with the totals of all its rows (every page) above it."""
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:  # not a redirect
            totals = selectors.accrual_totals(changelist.queryset)
            response.context_data["accrual_totals"] = {
                name: value if name == "accruals" else amount(value) for name, value in totals.items()
            }
        return response

    @admin.display(description="source")
    def source(self, obj):
        """What the fee came from: a closed position or a spot sell (order)."""
        return obj.source

    @admin.display(description="position")
    def position_link(self, obj):
        return change_link(obj.source_position)

    @admin.display(description="spot sell")
    def order_link(self, obj):
        return change_link(obj.source_order)

    @admin.display(description="copy wallet")
    def copy_account_link(self, obj):
        return change_link(obj.copy_account)

    def get_actions(self, request):
        # The only write on this page; the read-only base class removes the
        # built-in delete action.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Resolve stuck fee allocation (re-run its settlement)")
    def resolve_stuck(self, request, queryset):
        settled, failed = 0, []
        for pk in queryset.exclude(status=AccrualStatus.SETTLED).values_list("pk", flat=True):
            accrual = services.fee_accrual_resolve(accrual_id=pk, actor=request.user)
            if accrual.status == AccrualStatus.SETTLED:
                settled += 1
            else:
                failed.append(f"#{pk}: {accrual.error}")
        if settled:
            self.message_user(request, f"{settled} fee accrual(s) settled.", messages.SUCCESS)
        if failed:
            self.message_user(request, "Still failing: " + "; ".join(failed), messages.ERROR)
        if not settled and not failed:
            self.message_user(request, "Nothing to resolve: the selected accruals are settled.", messages.INFO)


@admin.register(FeeAuditEntry)
class FeeAuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "accrual", "action", "actor"]
    list_select_related = ["accrual", "actor"]
    list_filter = ["action"]
    search_fields = ["=accrual__id"]


@admin.register(HighWaterMark)
class HighWaterMarkAdmin(ReadOnlyAdmin):
    list_display = ["subscription_id", "portfolio_id", "copy_account", "mark", "updated_at"]
    search_fields = ["=subscription_id", "=portfolio_id"]


@admin.register(LeaderProfitAccount)
class LeaderProfitAccountAdmin(ReadOnlyAdmin):
    list_display = ["portfolio_id", "leader", "account", "created_at"]
    list_select_related = ["leader", "account"]
    search_fields = ["=portfolio_id", "leader__username"]


@admin.register(LeaderWithdrawal)
class LeaderWithdrawalAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "leader", "portfolio_id", "amount", "requested_amount", "currency"]
    list_select_related = ["leader"]
    list_filter = [LeaderFilter.on("leader"), "created_at"]
    search_fields = ["=portfolio_id", "leader__username"]
    date_hierarchy = "created_at"
