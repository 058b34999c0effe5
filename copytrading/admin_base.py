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


class LeaderFilter(admin.SimpleListFilter):
    """``?leader=<username>``: the rows of one leader. Its choices are the
    leaders the list has rows for (the first LIMIT by username) and the one
    chosen. Subclass per list with ``leader_path``, the user foreign key's
    path from the model (``LeaderFilter.on("portfolio__leader")``)."""

    title = "leader"
    parameter_name = "leader"
    leader_path = ""
    LIMIT = 100

    @classmethod
    def on(cls, leader_path: str) -> type["LeaderFilter"]:
        return type(f"LeaderFilter[{leader_path}]", (cls,), {"leader_path": leader_path})

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        from django.contrib.auth import get_user_model

        leaders = get_user_model().objects.filter(pk__in=model_admin.get_queryset(request).values(self.leader_path))
        names = list(leaders.order_by("username").values_list("username", flat=True)[: self.LIMIT])
        if self.value() and self.value() not in names:
            names.append(self.value())
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset):
        if self.value():
            return queryset.filter(**{f"{self.leader_path}__username": self.value()})
        return queryset
