"""The back office's read-only bases, shared by every app's admin (and by
the rooms inside copytrading that register their own models)."""

from collections.abc import Callable
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.http import HttpRequest
from django.utils.html import format_html

from copytrading.audit.admin import AuditHistoryMixin


class MoneyColumnsMixin:
    """List pages show every money column (a ``MONEY_FIELDS`` decimal of the
    model) as money: ``1,234.50 USDT``, the stored value on hover. One place
    for every app's admin: the columns stay named as they are in
    ``list_display`` (sorting, filters and checks unchanged)."""

    def get_list_display(self, request: HttpRequest):
        return [
            _money_column_of(self.model, name) if isinstance(name, str) else name
            for name in super().get_list_display(request)
        ]


class ReadOnlyAdmin(AuditHistoryMixin, MoneyColumnsMixin, admin.ModelAdmin):
    """Viewable, never added, changed or deleted through the admin: the add,
    change (POST) and delete views answer 403 even for a superuser. Its
    "History" shows the object's audit entries."""

    def get_ordering(self, request: HttpRequest):
        # Newest first, as the change list sorts anyway; explicit so that the
        # autocomplete views page a deterministic order too.
        return super().get_ordering(request) or self.model._meta.ordering or ["-pk"]

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


# --- money on the back office's pages --------------------------------------------------

_CENTS = Decimal("0.01")


def money_text(amount: Decimal | None, currency: str | None = None) -> str:
    """``Decimal("1234567.50000000")`` -> ``"1,234,567.50 USDT"``: thousands
    separators, at least 2 places and every significant place beyond (a
    ledger amount is never rounded for display), and the currency (the
    primary one unless given). Decimal only: never through a float."""
    if amount is None:
        return "—"
    value = Decimal(amount)
    exponent = value.normalize().as_tuple().exponent
    if not isinstance(exponent, int) or exponent > -2:  # whole, or 1 place: show cents
        value = value.quantize(_CENTS)
    else:
        value = value.normalize()
    return f"{value:,f} {currency or settings.PRIMARY_CURRENCY}"


def money_html(amount: Decimal | None, currency: str | None = None) -> str:
    """``money_text`` with the stored value on hover (and in the page, for
    search and copy): ``<span … title="1234567.50000000">1,234,567.50 USDT</span>``, on one line."""
    if amount is None:
        return "—"
    text = money_text(amount, currency)
    return format_html('<span class="money" style="white-space: nowrap" title="{}">{}</span>', str(amount), text)


def money_column(field: str, *, description: str | None = None, currency_field: str | None = None) -> Callable:
    """A sortable list column showing ``obj.<field>`` as money, e.g.
    ``list_display = [..., money_column("balance", currency_field="currency")]``."""

    @admin.display(description=description or field.replace("_", " "), ordering=field)
    def column(obj) -> str:
        currency = getattr(obj, currency_field) if currency_field else None
        return money_html(getattr(obj, field), currency)

    column.__name__ = f"{field}_money"
    return column


# Decimal fields holding an amount of money (not a quantity, price or percent).
MONEY_FIELDS = frozenset(
    {
        "amount", "available", "average_pnl", "balance", "cost_basis", "daily_loss_limit_realized",
        "daily_loss_limit_unrealized", "fee", "fee_due", "fixed_notional", "invested", "leader_part", "locked",
        "margin", "mark", "mark_after", "mark_before", "min_investment", "peak_equity", "platform_part", "pnl",
        "position_pnl", "profit", "realized_pnl", "requested_amount",
    }
)  # fmt: skip


@cache
def _money_column_of(model: type[models.Model], name: str) -> str | Callable:
    """``name`` itself, or a money column for it when it is a money field."""
    if name not in MONEY_FIELDS:
        return name
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return name  # a method or attribute of the admin: its own display
    if not isinstance(field, models.DecimalField):
        return name
    has_currency = any(f.name == "currency" for f in model._meta.concrete_fields)
    return money_column(name, description=str(field.verbose_name), currency_field="currency" if has_currency else None)
