"""Back office view of subscriptions (the follower drill-down starts here).

Read-only: pause, resume and unfollow move money or change what gets copied,
so the admin actions call the same services as the follower's API.
"""

from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from copytrading import admin_hooks, reasons, sizing
from copytrading.admin import ReadOnlyAdmin, change_link, changelist_link
from copytrading.admin_base import LeaderFilter, money_html
from copytrading.errors import DomainError
from copytrading.models import Execution, Holding, Order, Position
from fees.models import FeeAccrual
from fees.selectors import subscription_fees_total
from followers import services
from followers.models import Subscription
from followers.selectors import copy_snapshots
from risk.selectors import risk_overview

PAUSED_BY_STAFF = "staff"
# What a subscription's page shows of its history (one query each).
RECENT_EXECUTIONS = 20
RECENT_RISK_EVENTS = 10
RECENT_FEES = 10

# The core's admin pages (executions, orders) show subscription ids as links
# to this page, and find executions by the follower's username: the core
# cannot import this app, so it is told here (copytrading.admin_hooks).
admin_hooks.register_page("subscription", "admin:followers_subscription_change")
admin_hooks.register_follower_lookup(
    admin_hooks.FollowerLookup(
        username=lambda column: Subquery(
            Subscription.objects.filter(pk=OuterRef(column)).values("follower__username")[:1]
        ),
        subscriptions_named=lambda term: Subscription.objects.filter(follower__username__iexact=term).values("pk"),
    )
)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "follower",
        "portfolio_link",
        "status",
        "pause_reason",
        "end_reason",
        "sizing_model",
        "sizing_parameter",
        "wallet_balance",
        "wallet_locked",
        "invested",
        "created_at",
    ]
    list_filter = [
        "status",
        "sizing_model",
        "copy_margin",
        "copy_spot",
        "created_at",
        LeaderFilter.on("portfolio__leader"),
    ]
    search_fields = ["=id", "follower__username", "=portfolio__id", "portfolio__name"]
    # One query for the page: the wallet columns read the joined copy account.
    list_select_related = ["follower", "portfolio", "copy_account"]
    autocomplete_fields = ["follower", "portfolio", "copy_account"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [
        "sizing_parameter",
        "copy_wallet",
        "activity",
        "figures",
        "recent_executions",
        "risk_events",
        "fees_paid",
    ]
    actions = ["pause_selected", "resume_selected", "unfollow_selected"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_lifecycle_permission(self, request) -> bool:
        return request.user.has_perm("followers.change_subscription")

    def _each(self, request, queryset, action, done_message: str) -> None:
        done = 0
        for subscription in queryset.order_by("pk"):
            try:
                action(subscription)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"#{subscription.pk}: {exc.detail}", messages.ERROR)
        self.message_user(request, f"{done} subscription(s) {done_message}.", messages.SUCCESS)

    @admin.action(description="Pause the selected copies", permissions=["lifecycle"])
    def pause_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda s: services.subscription_pause(subscription=s, reason=PAUSED_BY_STAFF, actor=request.user),
            "paused",
        )

    @admin.action(description="Resume the selected copies", permissions=["lifecycle"])
    def resume_selected(self, request, queryset):
        self._each(
            request, queryset, lambda s: services.subscription_resume(subscription=s, actor=request.user), "resumed"
        )

    @admin.action(description="Unfollow: close mirrors, return the wallets", permissions=["lifecycle"])
    def unfollow_selected(self, request, queryset):
        reason = f"ended by staff ({request.user.get_username()})"
        self._each(
            request,
            queryset,
            lambda s: services.subscription_unfollow(subscription=s, reason=reason, actor=request.user),
            "ended",
        )

    @admin.display(description="portfolio", ordering="portfolio__name")
    def portfolio_link(self, obj: Subscription) -> str:
        return change_link(obj.portfolio)

    @admin.display(description="sizing parameter")
    def sizing_parameter(self, obj: Subscription) -> str:
        field = sizing.PARAMETER_RANGES[obj.sizing_model][0]
        return f"{field}={getattr(obj, field)}"

    @admin.display(description="wallet balance", ordering="copy_account__balance")
    def wallet_balance(self, obj: Subscription):
        return money_html(obj.copy_account.balance, obj.copy_account.currency)

    @admin.display(description="wallet locked", ordering="copy_account__locked")
    def wallet_locked(self, obj: Subscription):
        return money_html(obj.copy_account.locked, obj.copy_account.currency)

    @admin.display(description="copy wallet")
    def copy_wallet(self, obj: Subscription) -> str:
        wallet = obj.copy_account
        return change_link(
            wallet, f"#{wallet.pk}: balance {wallet.balance}, locked {wallet.locked}, free {wallet.free}"
        )

    @admin.display(description="activity")
    def activity(self, obj: Subscription) -> str:
        return format_html(
            "{} · {} · {} · {}",
            changelist_link(Execution, "executions", subscription_id=obj.pk),
            changelist_link(Position, "positions", account__id__exact=obj.copy_account_id),
            changelist_link(Holding, "holdings", account__id__exact=obj.copy_account_id),
            changelist_link(Order, "orders", account__id__exact=obj.copy_account_id),
        )

    # --- the page's history: what support reads to answer a follower -----------

    @admin.display(description="equity and PnL")
    def figures(self, obj: Subscription) -> str:
        """At the current marks, as the follower's API shows them (the same
        selector: followers.selectors.copy_snapshots)."""
        snap = copy_snapshots([obj])[obj.pk]
        rows = [
            ("equity", snap.equity),
            ("cash balance", snap.balance),
            ("realized PnL (net of fees)", snap.realized_pnl),
            ("unrealized PnL", snap.unrealized_pnl),
            ("total PnL", snap.total_pnl),
            ("ROI %", snap.roi_pct),
            ("margin level %", snap.margin_level_pct if snap.margin_level_pct is not None else "-"),
        ]
        return _table(None, rows)

    @admin.display(description="recent executions")
    def recent_executions(self, obj: Subscription) -> str:
        rows = list(
            Execution.objects.filter(subscription_id=obj.pk).select_related("event").order_by("-id")[:RECENT_EXECUTIONS]
        )
        body = [
            (
                change_link(e, f"#{e.pk}"),
                e.created_at,
                change_link(e.event, f"#{e.event_id} {e.event.get_kind_display()}"),
                e.outcome,
                reasons.reason_text(e.reason_code, reasons.execution_values(e)) or "-",
                e.follower_quantity if e.follower_quantity is not None else "-",
                e.follower_price if e.follower_price is not None else "-",
            )
            for e in rows
        ]
        table = _table(["id", "at", "leader event", "outcome", "reason", "quantity", "price"], body)
        return format_html("{}{}", table, changelist_link(Execution, "all executions", subscription_id=obj.pk))

    @admin.display(description="risk events")
    def risk_events(self, obj: Subscription) -> str:
        overview = risk_overview(obj.pk, events=RECENT_RISK_EVENTS)
        body = [
            (
                change_link(r, f"#{r.pk}"),
                r.created_at,
                r.get_rule_display(),
                r.measured if r.measured is not None else "-",
                r.threshold if r.threshold is not None else "-",
                r.get_action_display(),
                r.detail or "-",
            )
            for r in overview.recent_events
        ]
        table = _table(["id", "at", "rule", "measured", "threshold", "action", "detail"], body)
        url = reverse("admin:risk_riskevent_changelist")
        return format_html('{}<a href="{}?subscription_id={}">all risk events</a>', table, url, obj.pk)

    @admin.display(description="fees paid")
    def fees_paid(self, obj: Subscription) -> str:
        """The profit share charged to this copy: the total (fees.selectors,
        as the follower's fee statistics) and the latest accruals."""
        total = subscription_fees_total(subscription_id=obj.pk)
        recent = FeeAccrual.objects.filter(subscription_id=obj.pk).order_by("-id")[:RECENT_FEES]
        body = [
            (change_link(a, f"#{a.pk}"), a.accrued_at, a.source, a.profit, a.fee, a.get_status_display())
            for a in recent
        ]
        table = _table(["id", "accrued", "source", "profit", "fee", "status"], body)
        url = reverse("admin:fees_feeaccrual_changelist")
        return format_html(
            '{} paid in {} accrual(s) ({} due). {}<a href="{}?subscription_id={}">all fee accruals</a>',
            total["fees"], total["count"], total["fees_due"], table, url, obj.pk,
        )  # fmt: skip


def _table(header: list[str] | None, rows: list[tuple]) -> str:
    """A small read-only table for a readonly field (cells escaped unless
    already safe HTML, e.g. links)."""
    if not rows:
        return format_html("<p>{}</p>", "None.")
    head = (
        format_html("<thead><tr>{}</tr></thead>", format_html_join("", "<th>{}</th>", ((h,) for h in header)))
        if header
        else ""
    )
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html("<table>{}<tbody>{}</tbody></table>", head, body)
