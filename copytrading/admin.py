"""Back office views of the trading core.

Everything here is read-only: ledger rows are append-only (a correction is a
new transfer made by a service), and trading rows are written by the venue and
the propagation engine only. Staff actions will call services, never edit rows.

The core knows portfolios and subscriptions by id only: their ids become
links, and an execution's follower a username, through what the apps above
register in ``copytrading.admin_hooks`` (the core never imports them).
"""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import F, OuterRef, Q, Subquery, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from copytrading import admin_hooks, events, reasons
from copytrading.admin_base import ReadOnlyAdmin, ReadOnlyInline, money_html
from copytrading.audit import admin as audit_admin
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
    TransferKey,
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
        "event_link",
        "subscription_link",
        "executions",
    ]
    list_filter = ["status", "side", "instrument", "created_at"]
    search_fields = ["=id", "=account__id", "=subscription_id", "=leader_event__id", "instrument__symbol"]
    list_select_related = ["account", "instrument"]
    autocomplete_fields = ["account", "position", "leader_event"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = ["event_link", "subscription_link", "executions_counted"]

    @admin.display(description="leader event", ordering="leader_event_id")
    def event_link(self, obj: Order) -> str:
        if obj.leader_event_id is None:
            return "-"
        url = reverse("admin:copytrading_leaderevent_change", args=[obj.leader_event_id])
        return format_html('<a href="{}">#{}</a>', url, obj.leader_event_id)

    @admin.display(description="subscription", ordering="subscription_id")
    def subscription_link(self, obj: Order) -> str:
        return admin_hooks.page_link("subscription", obj.subscription_id)

    @admin.display(description="executions")
    def executions(self, obj: Order) -> str:
        """A follower's order: the execution row it belongs to. A leader's
        order: the rows of every follower for the events it made."""
        if obj.subscription_id is not None:
            return changelist_link(Execution, "execution", order__id__exact=obj.pk)
        return changelist_link(Execution, "executions", leader_order=obj.pk)

    @admin.display(description="executions")
    def executions_counted(self, obj: Order) -> str:
        # The order's own page counts them (one query; the list does not).
        if obj.subscription_id is not None:
            return self.executions(obj)
        count = Execution.objects.filter(event__in=leader_order_events(obj.pk)).count()
        return changelist_link(Execution, f"{count} executions", leader_order=obj.pk)


class PropagationChunkInline(ReadOnlyInline):
    model = PropagationChunk
    fields = ["index", "first_subscription_id", "last_subscription_id", "status", "attempts", "updated_at"]
    readonly_fields = fields


@admin.register(LeaderEvent)
class LeaderEventAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "portfolio_link",
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
    readonly_fields = ["executions", "portfolio_link"]
    actions = ["replay"]

    @admin.action(description="Replay the selected events (serves only followers without an execution row)")
    def replay(self, request: HttpRequest, queryset) -> None:
        queued = sum(
            events.leader_event_replay(event_id=pk, actor=request.user) for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{queryset.count()} event(s) replayed; {queued} chunk(s) queued.")

    def get_queryset(self, request: HttpRequest):
        # How many execution rows the event wrote: its chunks count them
        # (a sum over a few checkpoints, not a count over every follower's row).
        written = (
            PropagationChunk.objects.filter(event=OuterRef("pk"))
            .values("event")
            .annotate(n=Sum(F("copied") + F("skipped") + F("rejected") + F("failed")))
            .values("n")
        )
        return super().get_queryset(request).annotate(execution_count=Subquery(written))

    @admin.display(description="executions", ordering="execution_count")
    def executions(self, obj: LeaderEvent) -> str:
        count = getattr(obj, "execution_count", None) or 0
        return changelist_link(Execution, f"{count} executions", event__id__exact=obj.pk)

    @admin.display(description="portfolio", ordering="portfolio_id")
    def portfolio_link(self, obj: LeaderEvent) -> str:
        return admin_hooks.page_link("portfolio", obj.portfolio_id)


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


class ReasonCodeFilter(admin.SimpleListFilter):
    """The reason codes from the one table (copytrading/reasons.py), not a
    ``SELECT DISTINCT`` over every execution row on each page load."""

    title = "reason code"
    parameter_name = "reason_code__exact"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [(code, code) for code in sorted(reasons.TEXTS)]

    def queryset(self, request: HttpRequest, queryset):
        return queryset.filter(reason_code=self.value()) if self.value() else queryset


class LeaderOrderFilter(admin.SimpleListFilter):
    """``?leader_order=<id>``: the executions of every event a leader's order
    made (its fill, or a limit order's place, re-prices, cancel and fills).
    Shown in the sidebar only while applied (the order pages link to it)."""

    title = "leader order"
    parameter_name = "leader_order"

    def _order_id(self) -> int | None:
        value = self.value()
        return int(value) if value and value.isascii() and value.isdigit() and len(value) < 19 else None

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, f"#{value}")] if value else []

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        order_id = self._order_id()
        if order_id is None:  # not an id: no order has it
            return queryset.none()
        return queryset.filter(event__in=leader_order_events(order_id))


def leader_order_events(order_id: int):
    """Ids of the leader events of the leader's order ``order_id``. Events
    name the order in their payload (not indexed), so the scan starts at the
    order's creation: its events are written with it or after it."""
    created_at = Order.objects.filter(pk=order_id).values_list("created_at", flat=True).first()
    if created_at is None:
        return LeaderEvent.objects.none().values("pk")
    return LeaderEvent.objects.filter(
        Q(payload__order_id=order_id) | Q(payload__leader_order_id=order_id),
        created_at__gte=created_at - LEADER_ORDER_EVENT_SLACK,
    ).values("pk")


# Clocks of two processes: an event's timestamp is never much before its order's.
LEADER_ORDER_EVENT_SLACK = timedelta(minutes=1)


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    """The answer to "why did follower X not copy trade Y?": search a
    username (or an event, portfolio or subscription id), open the row, read
    the reason as a sentence and what the decision saw."""

    list_display = [
        "id",
        "created_at",
        "event_link",
        "event_kind",
        "event_seq",
        "portfolio_link",
        "subscription_link",
        "follower",
        "outcome",
        "reason_code_text",
        "leader_quantity",
        "leader_fraction",
        "leader_price",
        "follower_quantity",
        "follower_price",
        "order_link",
        "exchange_status",
        "exchange_submitted_at",
        "exchange_acknowledged_at",
        "exchange_filled_at",
    ]
    list_filter = ["outcome", ReasonCodeFilter, "event__kind", "created_at", LeaderOrderFilter]
    # The search box takes a follower's username, or an event, portfolio or
    # subscription id (get_search_results: each an indexed lookup).
    search_fields = ["=portfolio_id", "=subscription_id", "=event__id"]
    search_help_text = "A follower's username, or an event, portfolio or subscription id."
    list_select_related = ["event", "order__exchange_order"]
    autocomplete_fields = ["event", "order"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["outcome", "reason", "reason_code", "reason_detail", "created_at"]}),
        (
            "Links",
            {"fields": ["event_link", "event_kind", "portfolio_link", "subscription_link", "follower", "order_link"]},
        ),
        (
            "What the decision saw",
            {
                "fields": [
                    "attempted_quantity",
                    "free_balance",
                    "min_quantity",
                    "min_notional",
                    "quantity_step",
                    "price_used",
                ]
            },
        ),
        (
            "The leader and the follower",
            {"fields": ["leader_quantity", "leader_fraction", "leader_price", "follower_quantity", "follower_price"]},
        ),
        (
            "On the exchange",
            {"fields": ["exchange_status", "exchange_submitted_at", "exchange_acknowledged_at", "exchange_filled_at"]},
        ),
    ]
    readonly_fields = [
        "reason",
        "event_link",
        "event_kind",
        "portfolio_link",
        "subscription_link",
        "follower",
        "order_link",
        "exchange_status",
        "exchange_submitted_at",
        "exchange_acknowledged_at",
        "exchange_filled_at",
    ]

    def get_queryset(self, request: HttpRequest):
        # The event is read by every row's reason sentence (its symbol), the
        # order by its link and exchange columns: joined on the change page
        # too (a queryset already joined here skips list_select_related).
        rows = super().get_queryset(request).select_related(*self.list_select_related)
        username = admin_hooks.follower_username("subscription_id")
        return rows.annotate(follower_username=username) if username is not None else rows

    def get_fieldsets(self, request: HttpRequest, obj=None):
        # The exchange's timeline only for a copy that went to an exchange.
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or exchange_order_of(obj) is None:
            return [fs for fs in fieldsets if fs[0] != "On the exchange"]
        return fieldsets

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        # Built here rather than by search_fields: a username is matched
        # through the followers app's subquery, and a number only against
        # the id columns (Django's "=portfolio_id" would compare text).
        term = search_term.strip().removeprefix("#")
        if not term:
            return queryset, False
        found = Q(pk__in=[])
        if term.isascii() and term.isdigit() and len(term) < 19:
            number = int(term)
            found |= Q(event_id=number) | Q(portfolio_id=number) | Q(subscription_id=number)
        named = admin_hooks.subscriptions_named(term)
        if named is not None:
            found |= Q(subscription_id__in=named)
        return queryset.filter(found), False

    @admin.display(description="Reason")
    def reason(self, obj: Execution) -> str:
        return reasons.reason_text(obj.reason_code, reasons.execution_values(obj)) or "-"

    @admin.display(description="reason code", ordering="reason_code")
    def reason_code_text(self, obj: Execution) -> str:
        # The code, with its sentence on hover.
        if not obj.reason_code:
            return "-"
        text = reasons.reason_text(obj.reason_code, reasons.execution_values(obj))
        return format_html('<span title="{}">{}</span>', text, obj.reason_code)

    @admin.display(description="follower", ordering="follower_username")
    def follower(self, obj: Execution) -> str:
        return getattr(obj, "follower_username", None) or "-"

    @admin.display(description="portfolio", ordering="portfolio_id")
    def portfolio_link(self, obj: Execution) -> str:
        return admin_hooks.page_link("portfolio", obj.portfolio_id)

    @admin.display(description="subscription", ordering="subscription_id")
    def subscription_link(self, obj: Execution) -> str:
        return admin_hooks.page_link("subscription", obj.subscription_id)

    @admin.display(description="order", ordering="order_id")
    def order_link(self, obj: Execution) -> str:
        return change_link(obj.order, f"#{obj.order_id}") if obj.order_id is not None else "-"

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
        revoked = sum(auth_token_revoke(token=token, actor=request.user) for token in queryset)
        self.message_user(request, f"{revoked} token(s) revoked.")


@admin.register(LoginThrottle)
class LoginThrottleAdmin(ReadOnlyAdmin):
    list_display = ["key", "attempts", "window_started_at", "locked_until"]
    search_fields = ["key"]
    actions = ["unlock"]

    @admin.action(description="Unlock: forget the selected counts and lockouts")
    def unlock(self, request: HttpRequest, queryset) -> None:
        cleared = login_throttle_clear(keys=list(queryset.values_list("key", flat=True)), actor=request.user)
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


@admin.register(TransferKey)
class TransferKeyAdmin(ReadOnlyAdmin):
    """The ledger's idempotency keys, one per transfer (unique here because the
    transfers are partitioned by month; written by a database trigger):
    support answers "was this key already used, and by which transfer?"."""

    list_display = ["idempotency_key", "transfer_id", "created_at"]
    search_fields = ["=idempotency_key"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
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
# And the audit trail's (one list of every entry; users' history).
audit_admin.register(admin.site)

# The live settings room's admin lives with the room.
from copytrading.live import admin as live_admin  # noqa: E402

live_admin.register(admin.site)
