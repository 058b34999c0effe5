"""The notifications in the back office: read-only, filtered by kind,
severity, read and e-mail state, searchable by username (registered by
copytrading/admin.py)."""

from django.contrib import admin

from copytrading.notifications.models import Notification, NotificationPreference


class ReadFilter(admin.SimpleListFilter):
    title = "read"
    parameter_name = "read"

    def lookups(self, request, model_admin):
        return [("yes", "Read"), ("no", "Unread")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(read_at__isnull=self.value() == "no")
        return queryset


class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "kind", "severity", "title", "read_at", "email_status", "emailed_at"]
    list_filter = ["kind", "severity", ReadFilter, "email_status", "hidden"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class NotificationPreferenceAdmin(NotificationAdmin):
    list_display = ["user", "kind", "in_app", "email", "updated_at"]
    list_filter = ["kind", "in_app", "email"]
    list_select_related = ["user"]


def register(site: admin.AdminSite) -> None:
    site.register(Notification, NotificationAdmin)
    site.register(NotificationPreference, NotificationPreferenceAdmin)
