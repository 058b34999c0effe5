from django.contrib import admin, messages
from django.db.models import Q
from django.utils.html import format_html

from backoffice.joberrors import job_errors_acknowledge
from backoffice.models import Heartbeat, JobError
from copytrading.audit.admin import AuditHistoryMixin


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    """Read-only: the processes write these (see /healthz)."""

    list_display = ("name", "at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AcknowledgedFilter(admin.SimpleListFilter):
    title = "acknowledged"
    parameter_name = "acknowledged"

    def lookups(self, request, model_admin):
        return [("no", "Open"), ("yes", "Acknowledged")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(acknowledged_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(~Q(acknowledged_at=None))
        return queryset


@admin.register(JobError)
class JobErrorAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """The job-error feed: one row per bug with its count. Read-only; staff
    acknowledge (a new occurrence re-opens it)."""

    list_display = ("last_seen", "severity", "task", "exception_class", "short_message", "count", "acknowledged")
    list_filter = (AcknowledgedFilter, "severity", "task", "exception_class")
    search_fields = ("task", "exception_class", "message", "arguments")
    date_hierarchy = "last_seen"
    actions = ["acknowledge"]
    fields = (
        "task", "exception_class", "severity", "message", "arguments", "count", "first_seen", "last_seen",
        "acknowledged_at", "acknowledged_by", "traceback_block", "fingerprint",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="message")
    def short_message(self, obj: JobError) -> str:
        return obj.message if len(obj.message) <= 120 else obj.message[:119] + "…"

    @admin.display(boolean=True)
    def acknowledged(self, obj: JobError) -> bool:
        return obj.acknowledged_at is not None

    @admin.display(description="traceback")
    def traceback_block(self, obj: JobError) -> str:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', obj.traceback)

    @admin.action(description="Acknowledge the selected job errors")
    def acknowledge(self, request, queryset):
        n = job_errors_acknowledge(error_ids=queryset.values_list("pk", flat=True), by=request.user)
        self.message_user(request, f"{n} job error(s) acknowledged.", messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the detail page is a view; acknowledging is the action

    def has_delete_permission(self, request, obj=None):
        return False


# The whole admin's titles (the index's dashboard: templates/admin/index.html).
admin.site.site_header = "Copy trading — back office"
admin.site.site_title = "Copy trading — back office"
admin.site.index_title = "The business at a glance"
