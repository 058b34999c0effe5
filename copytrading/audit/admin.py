"""The audit trail in the back office: one filterable list of every entry
(``/admin/auditlog/logentry/``, replacing django-auditlog's own page) and, on
every admin page of an object, a history that shows the object's entries
(``AuditHistoryMixin``, in the read-only bases and the editable admins).
Read-only: nothing here changes or deletes an entry."""

from urllib.parse import unquote

from auditlog.filters import ResourceTypeFilter
from auditlog.models import LogEntry
from django.contrib import admin
from django.contrib.admin.views.main import PAGE_VAR
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from copytrading import audit
from copytrading.audit.registry import VERBS

SUMMARY_MAX = 160
HISTORY_PER_PAGE = 50


def changes_summary(entry: LogEntry) -> str:
    """``field: before → after; …`` and the reason, shortened for a list."""
    changes = entry.changes_dict if entry.action != LogEntry.Action.DELETE else {}
    parts = [f"{field}: {_side(values, 0)} → {_side(values, 1)}" for field, values in changes.items()]
    reason = audit.reason_of(entry)
    if reason:
        parts.append(f"reason: {reason}")
    text = "; ".join(parts)
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def _side(values, index: int) -> str:
    try:
        value = values[index]
    except (IndexError, KeyError, TypeError):
        return "-"
    return "-" if value in (None, "None", "") else str(value)


def object_link(entry: LogEntry) -> str:
    """The object's admin page, or its name when it has none (deleted rows keep their name)."""
    label = f"{entry.content_type.name} {entry.object_repr}"
    try:
        url = reverse(f"admin:{entry.content_type.app_label}_{entry.content_type.model}_change", args=[entry.object_pk])
    except NoReverseMatch:
        return label
    return format_html('<a href="{}">{}</a>', url, label)


class ActorFilter(admin.SimpleListFilter):
    """Staff and "system" to pick from (every user would be too many); any
    other user's entries by ``?actor=<username>`` or the search box."""

    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        staff = get_user_model().objects.filter(is_staff=True).order_by("username")[:50]
        return [(audit.SYSTEM, "system"), *((user.get_username(), user.get_username()) for user in staff)]

    def queryset(self, request, queryset):
        value = self.value()
        if value == audit.SYSTEM:
            return queryset.filter(actor__isnull=True, additional_data__actor__isnull=True)
        if value:
            return queryset.filter(Q(actor__username=value) | Q(additional_data__actor=value))
        return queryset


class VerbFilter(admin.SimpleListFilter):
    title = "action"
    parameter_name = "verb"

    def lookups(self, request, model_admin):
        return list(VERBS.items())

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        automatic = {
            "create": LogEntry.Action.CREATE,
            "update": LogEntry.Action.UPDATE,
            "delete": LogEntry.Action.DELETE,
        }
        if value in automatic:
            # Saves recorded by the model's signals carry no verb of their own.
            return queryset.filter(action=automatic[value], additional_data__action__isnull=True)
        return queryset.filter(additional_data__action=value)


class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "actor_username", "verb", "object", "changes_summary"]
    list_filter = [ActorFilter, ResourceTypeFilter, VerbFilter, "timestamp"]
    search_fields = ["actor__username", "object_repr", "=object_pk"]
    list_select_related = ["content_type", "actor"]
    date_hierarchy = "timestamp"
    show_full_result_count = False
    fields = ["timestamp", "actor_username", "verb", "object", "changes_detail", "reason", "remote_addr", "cid"]
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        # The username kept in each entry too: it names users who are gone.
        results, duplicates = super().get_search_results(request, queryset, search_term)
        if search_term:
            results = results | queryset.filter(additional_data__actor=search_term.strip())
        return results, duplicates

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="actor")
    def actor_username(self, obj: LogEntry) -> str:
        return audit.actor_name(obj)

    @admin.display(description="action")
    def verb(self, obj: LogEntry) -> str:
        return audit.action_name(obj)

    @admin.display(description="object")
    def object(self, obj: LogEntry) -> str:
        return object_link(obj)

    @admin.display(description="changes")
    def changes_summary(self, obj: LogEntry) -> str:
        return changes_summary(obj)

    @admin.display(description="changes")
    def changes_detail(self, obj: LogEntry) -> str:
        rows = [
            format_html("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", field, _side(v, 0), _side(v, 1))
            for field, v in (obj.changes_dict or {}).items()
        ]
        return format_html(
            "<table><tr><th>field</th><th>before</th><th>after</th></tr>{}</table>",
            format_html("".join(["{}"] * len(rows)), *rows) if rows else "",
        )

    @admin.display(description="reason")
    def reason(self, obj: LogEntry) -> str:
        return audit.reason_of(obj)


class AuditHistoryMixin:
    """The admin's "History" of an object shows its audit entries (who, when,
    what changed, why) instead of Django's admin log, which sees only edits
    made through admin forms."""

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None):
        model = self.model
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, model._meta, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        entries: QuerySet[LogEntry] = (
            LogEntry.objects.get_for_object(obj).select_related("actor", "content_type").order_by("-timestamp", "-pk")
        )
        paginator = self.get_paginator(request, entries, HISTORY_PER_PAGE)
        page = paginator.get_page(request.GET.get(PAGE_VAR, 1))
        rows = [
            {
                "entry": entry,
                "actor": audit.actor_name(entry),
                "verb": audit.action_name(entry),
                "changes": [
                    (field, _side(values, 0), _side(values, 1)) for field, values in (entry.changes_dict or {}).items()
                ],
                "reason": audit.reason_of(entry),
            }
            for entry in page
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Audit history: {obj}",
            "subtitle": None,
            "object": obj,
            "opts": model._meta,
            "app_label": model._meta.app_label,
            "rows": rows,
            "page": page,
            "page_var": PAGE_VAR,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/audit/object_history.html", context)


def register(site: admin.AdminSite) -> None:
    """Our list in place of django-auditlog's (called by copytrading/admin.py)."""
    import auditlog.admin  # noqa: F401  (its page first, so that ours replaces it)

    if site.is_registered(LogEntry):
        site.unregister(LogEntry)
    site.register(LogEntry, AuditLogAdmin)
    _user_history(site)


def _user_history(site: admin.AdminSite) -> None:
    """Users' admin pages show their audit history too (staff rights, passwords)."""
    User = get_user_model()
    current = site._registry.get(User)
    if current is None or isinstance(current, AuditHistoryMixin):
        return
    site.unregister(User)
    site.register(User, type(type(current).__name__, (AuditHistoryMixin, type(current)), {}))
