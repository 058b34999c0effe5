"""Back office views of the trading core.

Everything here is read-only: ledger rows are append-only (a correction is a
new transfer made by a service), and trading rows are written by the venue and
the propagation engine only. Staff actions will call services, never edit rows.

The core knows portfolios and subscriptions by id only, so they are shown as
plain ids here; the apps above link back to these pages, not the other way.
"""

from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import F
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from copytrading import events
from copytrading.admin_base import ReadOnlyAdmin, ReadOnlyInline, money_html
from copytrading.auth.models import AuthToken, LoginThrottle
from copytrading.auth.services import auth_token_revoke, login_throttle_clear
from copytrading.exchanges import admin as exchanges_admin
from copytrading.models import (
    Account,
    Execution,
    Holding,
    IdempotentRequest,
    InboxMessage,
    Instrument,
    LeaderEvent,
    Order,
    Position,
    PriceCandle,
    PropagationChunk,
    StreamNotice,
    Transfer,
)
from copytrading.notifications import admin as notifications_admin
from copytrading.serializers import exchange_order_of


def changelist_link(model, label: str, **filters) -> str:
    """A link to ``model``'s changelist filtered by ``filters`` (admin query-string lookups)."""
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, urlencode(filters), label)


def change_link(obj, label: str | None = None) -> str:
    """A link to ``obj``'s admin page, or an empty cell when there is none."""
    if obj is None:
        return "-"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label if label is not None else str(obj))


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "user", "name", "currency", "balance", "locked", "free", "is_closed", "created_at"]
    list_filter = ["kind", "is_closed", "currency"]
    search_fields = ["=id", "user__username", "name"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
    date_hierarchy = "created_at"
    # Accounts grow with users and subscriptions: skip the unfiltered COUNT(*).
    show_full_result_count = False
    readonly_fields = ["free", "transfers"]

    @admin.display(description="free", ordering=F("balance") - F("locked"))
    def free(self, obj: Account):
        return money_html(obj.free, obj.currency)

    @admin.display(description="transfers")
    def transfers(self, obj: Account) -> str:
        return format_html(
            "{} · {}",
            changelist_link(Transfer, "debits", debit__id__exact=obj.pk),
            changelist_link(Transfer, "credits", credit__id__exact=obj.pk),
        )


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "kind", "amount", "debit", "credit", "ref", "idempotency_key"]
    list_filter = ["kind", "created_at"]
    search_fields = ["=id", "=debit__id", "=credit__id", "idempotency_key", "ref"]
    list_select_related = ["debit", "credit"]
    autocomplete_fields = ["debit", "credit"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(PriceCandle)
class PriceCandleAdmin(ReadOnlyAdmin):
    # Written by copytrading.candles after each mark; purged by purge_candles.
    list_display = ["id", "instrument", "minute", "open", "high", "low", "close", "ticks"]
    list_filter = ["instrument"]
    list_select_related = ["instrument"]
    autocomplete_fields = ["instrument"]
    date_hierarchy = "minute"
    show_full_result_count = False


@admin.register(Instrument)
class InstrumentAdmin(ReadOnlyAdmin):
    # Prices move through services.price_set (tick rounding, timestamp) and
    # venue constraints come from the market seed/sync, so no direct edits.
    list_display = [
        "symbol",
        "product",
        "base",
        "quote",
        "mark_price",
        "price_updated_at",
        "qty_step",
        "min_qty",
        "min_notional",
        "max_leverage",
        "is_active",
        "exchange",
        "mark_flag",
    ]
    list_filter = ["product", "is_active", "quote"]
    search_fields = ["symbol", "base", "quote"]


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "account",
        "instrument",
        "side",
        "status",
        "quantity",
        "entry_price",
        "leverage",
        "margin",
        "realized_pnl",
        "leader_position_id",
        "subscription_id",
        "opened_at",
        "closed_at",
    ]
    list_filter = ["status", "side", "instrument", "opened_at"]
    search_fields = ["=id", "=account__id", "=subscription_id", "=leader_position__id", "instrument__symbol"]
    list_select_related = ["account", "instrument"]
    autocomplete_fields = ["account", "leader_position"]
    date_hierarchy = "opened_at"
    show_full_result_count = False


@admin.register(Holding)
class HoldingAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "asset", "quantity", "reserved", "cost_basis"]
    list_filter = ["asset"]
    search_fields = ["=account__id", "asset"]
    list_select_related = ["account"]
    autocomplete_fields = ["account"]
    show_full_result_count = False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "created_at",
        "account",
        "instrument",
        "side",
        "order_type",
        "status",
        "quantity",
        "price",
        "leverage",
        "position_id",
        "leader_event_id",
        "subscription_id",
    ]
    list_filter = ["status", "side", "instrument", "created_at"]
    search_fields = ["=id", "=account__id", "=subscription_id", "=leader_event__id", "instrument__symbol"]
    list_select_related = ["account", "instrument"]
    autocomplete_fields = ["account", "position", "leader_event"]
    date_hierarchy = "created_at"
    show_full_result_count = False


class PropagationChunkInline(ReadOnlyInline):
    model = PropagationChunk
    fields = ["index", "first_subscription_id", "last_subscription_id", "status", "attempts", "updated_at"]
    readonly_fields = fields


@admin.register(LeaderEvent)
class LeaderEventAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "portfolio_id",
        "seq",
        "kind",
        "status",
        "created_at",
        "dispatched_at",
        "started_at",
        "completed_at",
        "executions",
    ]
    list_filter = ["status", "kind", "created_at"]
    search_fields = ["=id", "=portfolio_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [PropagationChunkInline]
    readonly_fields = ["executions"]
    actions = ["replay"]

    @admin.action(description="Replay the selected events (serves only followers without an execution row)")
    def replay(self, request: HttpRequest, queryset) -> None:
        queued = sum(events.leader_event_replay(event_id=pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{queryset.count()} event(s) replayed; {queued} chunk(s) queued.")

    @admin.display(description="executions")
    def executions(self, obj: LeaderEvent) -> str:
        return changelist_link(Execution, "executions", event__id__exact=obj.pk)


@admin.register(PropagationChunk)
class PropagationChunkAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "event",
        "index",
        "first_subscription_id",
        "last_subscription_id",
        "status",
        "attempts",
        "updated_at",
    ]
    list_filter = ["status", "updated_at"]
    search_fields = ["=event__id", "=event__portfolio_id"]
    list_select_related = ["event"]
    autocomplete_fields = ["event"]
    show_full_result_count = False


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "created_at",
        "event_link",
        "event_kind",
        "event_seq",
        "portfolio_id",
        "subscription_id",
        "outcome",
        "reason_code",
        "leader_quantity",
        "leader_fraction",
        "leader_price",
        "follower_quantity",
        "follower_price",
        "order_id",
        "exchange_status",
        "exchange_submitted_at",
        "exchange_acknowledged_at",
        "exchange_filled_at",
    ]
    list_filter = ["outcome", "reason_code", "event__kind", "created_at"]
    # Exact ids first: staff paste a portfolio or subscription id from a ticket.
    search_fields = ["=portfolio_id", "=subscription_id", "=event__id", "reason_code"]
    list_select_related = ["event", "order__exchange_order"]
    autocomplete_fields = ["event", "order"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    # A copy on an exchange account: its order's timeline (decided = created_at).
    @admin.display(description="exchange status")
    def exchange_status(self, obj: Execution) -> str:
        row = exchange_order_of(obj)
        return f"{row.status} {row.reject_code}".strip() if row else "-"

    @admin.display(description="submitted")
    def exchange_submitted_at(self, obj: Execution):
        row = exchange_order_of(obj)
        return row.submitted_at if row else None

    @admin.display(description="acknowledged")
    def exchange_acknowledged_at(self, obj: Execution):
        row = exchange_order_of(obj)
        return row.acknowledged_at if row else None

    @admin.display(description="filled")
    def exchange_filled_at(self, obj: Execution):
        row = exchange_order_of(obj)
        return row.filled_at if row else None

    @admin.display(description="event", ordering="event_id")
    def event_link(self, obj: Execution) -> str:
        return change_link(obj.event, f"#{obj.event_id}")

    @admin.display(description="event kind", ordering="event__kind")
    def event_kind(self, obj: Execution) -> str:
        return obj.event.get_kind_display()

    @admin.display(description="seq", ordering="event__seq")
    def event_seq(self, obj: Execution) -> int:
        return obj.event.seq


@admin.register(InboxMessage)
class InboxMessageAdmin(ReadOnlyAdmin):
    """Signals received from outside: support answers "why was my signal not executed?" here."""

    list_display = ["id", "received_at", "source", "portfolio_id", "external_id", "status"]
    list_filter = ["source", "status", "received_at"]
    search_fields = ["=external_id", "=portfolio_id"]
    date_hierarchy = "received_at"
    show_full_result_count = False


# --- the auth room ------------------------------------------------------------------


@admin.register(AuthToken)
class AuthTokenAdmin(ReadOnlyAdmin):
    """Tokens are shown by prefix only (the key itself is never stored)."""

    list_display = ["prefix", "user", "created_at", "expires_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "prefix"]
    list_select_related = ["user"]
    exclude = ["key_hash", "session_hash"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset) -> None:
        revoked = sum(auth_token_revoke(token=token) for token in queryset)
        self.message_user(request, f"{revoked} token(s) revoked.")


@admin.register(LoginThrottle)
class LoginThrottleAdmin(ReadOnlyAdmin):
    list_display = ["key", "attempts", "window_started_at", "locked_until"]
    search_fields = ["key"]
    actions = ["unlock"]

    @admin.action(description="Unlock: forget the selected counts and lockouts")
    def unlock(self, request: HttpRequest, queryset) -> None:
        cleared = login_throttle_clear(keys=list(queryset.values_list("key", flat=True)))
        self.message_user(request, f"{cleared} lockout(s) lifted.")


@admin.register(IdempotentRequest)
class IdempotentRequestAdmin(ReadOnlyAdmin):
    """First answers to money-moving POSTs sent with an Idempotency-Key (kept 24 h):
    support answers "did my retried order go through once?" here."""

    list_display = ["id", "created_at", "user", "key", "status_code"]
    list_filter = ["status_code", "created_at"]
    search_fields = ["=key", "=user__username"]
    date_hierarchy = "created_at"
    autocomplete_fields = ["user"]
    show_full_result_count = False


@admin.register(StreamNotice)
class StreamNoticeAdmin(ReadOnlyAdmin):
    """Embedded mode only: the live stream's notices to the web process (kept
    two minutes). Empty in services mode, where they go through Redis."""

    list_display = ["id", "created_at", "payload"]
    date_hierarchy = "created_at"
    show_full_result_count = False


# The notifications room's admin lives with the room.
notifications_admin.register(admin.site)
# So does the linked exchange accounts'.
exchanges_admin.register(admin.site)
