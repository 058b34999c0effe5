"""The back office's read-only bases, shared by every app's admin (and by
the rooms inside copytrading that register their own models)."""

from django.contrib import admin
from django.http import HttpRequest

from copytrading.audit.admin import AuditHistoryMixin


class ReadOnlyAdmin(AuditHistoryMixin, admin.ModelAdmin):
    """Viewable, never added, changed or deleted through the admin: the add,
    change (POST) and delete views answer 403 even for a superuser. Its
    "History" shows the object's audit entries."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
