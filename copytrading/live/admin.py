"""The live settings in the back office (registered by copytrading/admin.py):
the one record at /admin/copytrading/livesettings/ (django-solo's admin) and
the list of halted portfolios. Saving calls the services, which audit every
change; the per-portfolio halt and resume are actions on the portfolio admin
(portfolios/admin.py) and resume also here."""

import hashlib
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from solo.admin import SingletonModelAdmin

from copytrading.admin_base import ReadOnlyAdmin
from copytrading.errors import DomainError
from copytrading.live import services
from copytrading.live.models import LiveSettings, PortfolioHalt


def _version(record: LiveSettings) -> str:
    """What the page was opened on: the switch and every knob."""
    values = [_plain(getattr(record, name)) for name in (*services.SWITCH, *services.KNOBS)]
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def _plain(value):
    return format(value.normalize(), "f") if isinstance(value, Decimal) else value


class LiveSettingsForm(forms.ModelForm):
    # The record as the page showed it: a save from a page opened before
    # someone else changed the record (e.g. halted copying from the command
    # line) is refused, not applied over their change.
    version = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = LiveSettings
        fields = ["copying_halted", "copying_halted_reason", *services.KNOBS]
        widgets = {"copying_halted_reason": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A stored 8-place zero reads "0E-8" in an input: show decimals as plain numbers.
        for name, value in self.initial.items():
            if isinstance(value, Decimal):
                self.initial[name] = _plain(value)
        if self.instance.pk is not None:
            self.initial["version"] = _version(self.instance)

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None and cleaned.get("version") != _version(self.instance):
            raise forms.ValidationError(
                "The live settings were changed by someone else since this page was opened "
                "(see History). Reload the page and apply your change again.",
                code="stale",
            )
        if cleaned.get("copying_halted") and not (cleaned.get("copying_halted_reason") or "").strip():
            self.add_error("copying_halted_reason", "A reason is required to halt copying; followers see it.")
        return cleaned


class LiveSettingsAdmin(SingletonModelAdmin):
    form = LiveSettingsForm
    readonly_fields = ["copying_halted_at", "copying_halted_by", "halted_portfolios", "updated_at"]
    fieldsets = [
        (
            "Kill switch",
            {
                "fields": [
                    "version",
                    "copying_halted",
                    "copying_halted_reason",
                    "copying_halted_at",
                    "copying_halted_by",
                    "halted_portfolios",
                ],
                "description": "Halting skips every new copy (opens, buys, new limit orders) as COPYING_HALTED "
                "with this reason; closes, reduces, sells and TP/SL still follow the leader, and a mirror limit "
                "order placed before the halt still fills with the leader's. Followers are notified once.",
            },
        ),
        ("Watchdog", {"fields": ["margin_call_level_pct"]}),
        ("Subscribing", {"fields": ["min_investment"]}),
        ("Notifications", {"fields": ["notify_trade_copied"]}),
        (
            "Default fee and limits groups",
            {"fields": ["default_max_profit_share_pct", "default_platform_cut_pct", "default_max_followers"]},
        ),
        ("Catalog", {"fields": ["catalog_cache_seconds", "updated_at"]}),
    ]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="halted portfolios")
    def halted_portfolios(self, obj: LiveSettings) -> str:
        count = PortfolioHalt.objects.count()
        url = reverse("admin:copytrading_portfoliohalt_changelist")
        return format_html('<a href="{}">{} halted portfolio(s)</a>', url, count)

    def save_model(self, request: HttpRequest, obj: LiveSettings, form, change: bool) -> None:
        """Through the services (audited, cache dropped), never ``obj.save()``."""
        values = {name: form.cleaned_data[name] for name in services.KNOBS}
        values["copying_halted"] = form.cleaned_data["copying_halted"]
        values["copying_halted_reason"] = form.cleaned_data["copying_halted_reason"]
        try:
            services.update_settings(actor=request.user, **values)
        except DomainError as exc:  # the form validated the same ranges; a race at worst
            self.message_user(request, exc.detail, messages.ERROR)


class PortfolioHaltAdmin(ReadOnlyAdmin):
    """Halted portfolios (copying of each is paused with a reason). Halt from
    the portfolio list's action; resume there or here."""

    list_display = ["portfolio_link", "reason", "by", "at"]
    list_select_related = ["by"]
    search_fields = ["=portfolio_id", "reason"]
    actions = ["resume"]

    def has_resume_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("copytrading.delete_portfoliohalt") or request.user.is_superuser

    @admin.display(description="portfolio", ordering="portfolio_id")
    def portfolio_link(self, obj: PortfolioHalt) -> str:
        try:  # the portfolios app sits above the core: reached by URL name
            url = reverse("admin:portfolios_portfolio_change", args=[obj.portfolio_id])
        except NoReverseMatch:
            return f"#{obj.portfolio_id}"
        return format_html('<a href="{}">#{}</a>', url, obj.portfolio_id)

    @admin.action(description="Resume copying of the selected portfolios", permissions=["resume"])
    def resume(self, request: HttpRequest, queryset) -> None:
        done = sum(
            services.resume_portfolio(pid, actor=request.user)
            for pid in queryset.order_by("portfolio_id").values_list("portfolio_id", flat=True)
        )
        self.message_user(request, f"Copying resumed for {done} portfolio(s).", messages.SUCCESS)


def register(site: admin.AdminSite) -> None:
    site.register(LiveSettings, LiveSettingsAdmin)
    site.register(PortfolioHalt, PortfolioHaltAdmin)
