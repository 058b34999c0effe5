"""Back office view of portfolios.

Read-only: a portfolio's settings and status change through the services;
the force-close action (reason required) calls portfolios.lifecycle.
"""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from copytrading import admin_hooks
from copytrading.admin import ReadOnlyAdmin, change_link, changelist_link
from copytrading.admin_base import money_html
from copytrading.errors import DomainError
from copytrading.live import services as live_services
from copytrading.live.models import REASON_MAX as HALT_REASON_MAX
from copytrading.models import Execution, LeaderEvent, Order, Position
from portfolios.lifecycle import REASON_MAX_LENGTH, portfolio_close
from portfolios.models import CopyTemplate, PasscodeThrottle, Portfolio

# The core's admin pages (leader events, executions) link portfolio ids here.
admin_hooks.register_page("portfolio", "admin:portfolios_portfolio_change")


class ForceCloseForm(forms.Form):
    reason = forms.CharField(max_length=REASON_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 3}))


class HaltCopyingForm(forms.Form):
    reason = forms.CharField(max_length=HALT_REASON_MAX, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Portfolio)
class PortfolioAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "name",
        "leader",
        "mode",
        "status",
        "is_public",
        "min_investment",
        "profit_share_pct",
        "trading_balance",
        "trading_locked",
        "created_at",
        "overview_link",
    ]
    list_filter = ["status", "mode", "is_public", "created_at"]
    search_fields = ["=id", "name", "leader__username"]
    list_select_related = ["leader", "trading_account"]
    autocomplete_fields = ["leader", "trading_account"]
    date_hierarchy = "created_at"
    readonly_fields = ["trading_account_link", "activity"]
    actions = ["force_close", "halt_copying", "resume_copying"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_force_close_permission(self, request) -> bool:
        return request.user.has_perm("portfolios.change_portfolio")

    @admin.action(description="Force-close the selected portfolios (reason required)", permissions=["force_close"])
    def force_close(self, request, queryset):
        form = ForceCloseForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            done = 0
            for portfolio in queryset.order_by("pk"):
                try:
                    portfolio_close(
                        portfolio=portfolio, actor=request.user, reason=form.cleaned_data["reason"], forced=True
                    )
                    done += 1
                except DomainError as exc:
                    self.message_user(request, f"#{portfolio.pk}: {exc.detail}", messages.ERROR)
            self.message_user(request, f"{done} portfolio(s) closing.", messages.SUCCESS)
            return None
        context = {**self.admin_site.each_context(request), "portfolios": list(queryset), "form": form}
        return TemplateResponse(request, "admin/portfolios/portfolio/force_close.html", context)

    # The kill switch of one portfolio (copytrading/live; docs/decisions.md §72).
    def has_halt_copying_permission(self, request) -> bool:
        return request.user.has_perm("portfolios.change_portfolio")

    has_resume_copying_permission = has_halt_copying_permission

    @admin.action(description="Halt copying of the selected portfolios (reason required)", permissions=["halt_copying"])
    def halt_copying(self, request, queryset):
        form = HaltCopyingForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            done = 0
            for pk in queryset.order_by("pk").values_list("pk", flat=True):
                try:
                    done += live_services.halt_portfolio(pk, reason=form.cleaned_data["reason"], actor=request.user)
                except DomainError as exc:
                    self.message_user(request, f"#{pk}: {exc.detail}", messages.ERROR)
            self.message_user(request, f"Copying halted for {done} portfolio(s).", messages.SUCCESS)
            return None
        context = {**self.admin_site.each_context(request), "portfolios": list(queryset), "form": form}
        return TemplateResponse(request, "admin/portfolios/portfolio/halt_copying.html", context)

    @admin.action(description="Resume copying of the selected portfolios", permissions=["resume_copying"])
    def resume_copying(self, request, queryset):
        done = sum(
            live_services.resume_portfolio(pk, actor=request.user)
            for pk in queryset.order_by("pk").values_list("pk", flat=True)
        )
        self.message_user(request, f"Copying resumed for {done} portfolio(s).", messages.SUCCESS)

    @admin.display(description="trading balance", ordering="trading_account__balance")
    def trading_balance(self, obj: Portfolio):
        return money_html(obj.trading_account.balance, obj.trading_account.currency)

    @admin.display(description="trading locked", ordering="trading_account__locked")
    def trading_locked(self, obj: Portfolio):
        return money_html(obj.trading_account.locked, obj.trading_account.currency)

    @admin.display(description="trading account")
    def trading_account_link(self, obj: Portfolio) -> str:
        account = obj.trading_account
        return change_link(account, f"#{account.pk}: balance {account.balance}, locked {account.locked}")

    @admin.display(description="overview")
    def overview_link(self, obj: Portfolio) -> str:
        # The overview page is the back office's (config/urls.py), reached by URL name.
        return format_html('<a href="{}">overview</a>', reverse("backoffice-portfolio-overview", args=[obj.pk]))

    @admin.display(description="activity")
    def activity(self, obj: Portfolio) -> str:
        # The followers app sits beside this one, so it is reached by URL name,
        # not by import.
        subscriptions = reverse("admin:followers_subscription_changelist")
        return format_html(
            "{} · {} · {} · {} · {} · {}",
            self.overview_link(obj),
            format_html('<a href="{}?portfolio__id__exact={}">subscriptions</a>', subscriptions, obj.pk),
            changelist_link(LeaderEvent, "leader events", portfolio_id=obj.pk),
            changelist_link(Execution, "executions", portfolio_id=obj.pk),
            changelist_link(Order, "orders", account__id__exact=obj.trading_account_id),
            changelist_link(Position, "positions", account__id__exact=obj.trading_account_id),
        )


@admin.register(CopyTemplate)
class CopyTemplateAdmin(ReadOnlyAdmin):
    """Leaders' custom templates (the platform defaults live in code:
    portfolios/copy_settings.py). Subscriptions hold copies of the values."""

    list_display = ["id", "name", "portfolio", "sizing_model", "multiplier", "fixed_notional", "leverage_override"]
    list_filter = ["sizing_model"]
    search_fields = ["=id", "name", "=portfolio__id", "portfolio__name"]
    list_select_related = ["portfolio"]
    autocomplete_fields = ["portfolio"]


@admin.register(PasscodeThrottle)
class PasscodeThrottleAdmin(ReadOnlyAdmin):
    """Wrong-passcode counters: who is locked out of private portfolios, until when."""

    list_display = ["id", "scope", "subject_id", "attempts", "window_started_at", "locked_until"]
    list_filter = ["scope"]
    search_fields = ["=subject_id"]


# Statistics, scores and favorites have their own module.
from portfolios import stats_admin  # noqa: E402, F401
