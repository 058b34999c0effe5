"""Copy a portfolio: the copy dialog and its "what would I have earned" preview.

The form mirrors ``POST /api/v1/subscriptions`` (followers/api.py): the API's
``SubscribeSerializer`` for the shape, ``passcode_check`` outside the
subscribe's transaction, then ``services.subscription_open``. The preview
mirrors ``POST /api/v1/portfolios/<id>/simulate`` (followers/simulate_api.py)
and calls ``simulator.portfolio_simulate``, which keeps the per-user throttle
and the per-input cache. The custom settings are drawn from the API's
``SettingsSerializer``'s fields, so a setting the API adds shows up here.

A private portfolio's passcode is checked (each wrong one counted against the
lockout) only when the reader gives it: when its own field changes, and at
subscribe, as the API checks it there. A right one is remembered in the
session for that portfolio (``PASSCODE_OK``: never the passcode, a tag of its
stored hash, so a new passcode asks again), and the preview then runs on the
other fields' changes without sending it; without one the preview asks for it
and counts nothing. Before, every preview resent the passcode: one mistyped
digit and five changes of the amount locked the reader out.

A double submit makes one subscription: the form carries a key recorded as an
``IdempotentRequest`` in the subscribe's transaction (a repeat finds it and
goes where the first went), and the one-live-copy unique constraint holds the
line when both race.
"""

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from rest_framework import serializers

from copytrading import idempotency
from copytrading.auth.client import client_address
from copytrading.errors import DomainError
from copytrading.models import IdempotentRequest
from copytrading.web.forms import (
    FORM,
    Errors,
    as_json_types,
    domain_errors,
    form_data,
    serializer_errors,
    validated,
)
from followers import services
from followers.replay import simulator
from followers.serializers import SettingsSerializer, SubscribeSerializer
from followers.simulate_api import SimulateSerializer
from portfolios.copy_templates import default_templates, templates_of
from portfolios.models import Portfolio
from portfolios.passcodes import passcode_check

KEY_FIELD = "idempotency_key"
KEY_PREFIX = "web-copy:"
KEY_LENGTH = 64
# The copy settings' labels; a field the API adds without one here gets its name.
LABELS = {
    "sizing_model": "Sizing",
    "multiplier": "Multiplier",
    "fixed_notional": "Fixed amount per trade",
    "risk_factor": "Risk factor",
    "leverage_override": "Leverage",
    "copy_margin": "Copy margin trades",
    "copy_spot": "Copy spot trades",
    "slippage_tolerance_pct": "Slippage tolerance (%)",
    "daily_loss_limit_realized": "Daily realized loss limit",
    "daily_loss_limit_unrealized": "Open loss limit",
    "margin_call_level_pct": "Margin call level (%)",
    "max_drawdown_pct": "Max drawdown (%)",
    "max_open_positions": "Max open positions",
    "max_exposure_pct": "Max exposure (%)",
}
SETTING_NAMES = tuple(SettingsSerializer().fields)
# The session's {portfolio id: tag of the passcode hash let in} (see the module's docstring).
PASSCODE_OK = "passcode_ok"


@dataclass(frozen=True)
class SettingInput:
    """One custom setting as the form shows it: a select for a choice or a
    yes/no (left blank: not given, the template's or the default applies),
    a text box for a number."""

    name: str
    label: str
    help: str
    choices: list[tuple[str, str]] | None
    numeric: bool


def setting_inputs() -> list[SettingInput]:
    inputs = []
    for name, field in SettingsSerializer().fields.items():
        choices = None
        if isinstance(field, serializers.ChoiceField):
            choices = [("", "Default"), *((str(k), str(v).capitalize()) for k, v in field.choices.items())]
        elif isinstance(field, serializers.BooleanField):
            choices = [("", "Default"), ("true", "Yes"), ("false", "No")]
        label = LABELS.get(name) or name.replace("_", " ").capitalize()
        help_text = str(field.help_text or "")
        numeric = isinstance(field, serializers.IntegerField)
        inputs.append(SettingInput(name, label, help_text, choices, numeric))
    return inputs


def _posted(post: QueryDict) -> dict[str, Any]:
    """The form as the API would get it: blanks left out, values in their JSON
    types, and the custom settings only when "Custom settings" is chosen (a
    template's own values are what the reader picked)."""
    data = form_data(post)
    data.pop(KEY_FIELD, None)
    if data.get("template"):
        for name in SETTING_NAMES:
            data.pop(name, None)
    return as_json_types(data, SubscribeSerializer())


def _context(request: HttpRequest, portfolio: Portfolio, **extra: Any) -> dict[str, Any]:
    post = request.POST if request.method == "POST" else QueryDict()
    # As the API reads a portfolio (portfolios/template_api.py, the catalog):
    # a private one shows its name and its own templates to its leader only;
    # anyone else reaches it by its id and its passcode.
    readable = portfolio.is_public or portfolio.leader_id == request.user.pk
    return {
        "portfolio": portfolio,
        "readable": readable,
        "templates": templates_of(portfolio) if readable else default_templates(),
        "settings_inputs": setting_inputs(),
        "periods": simulator.PERIODS,
        "form": {k: v[:80] for k, v in post.items()},
        "chosen_template": post.get("template", "balanced") if request.method == "POST" else "balanced",
        "chosen_days": post.get("days", "30"),
        "idempotency_key": post.get(KEY_FIELD) or uuid.uuid4().hex,
        "currency": settings.PRIMARY_CURRENCY,
        "errors": {},
        **extra,
    }


def _render_form(request: HttpRequest, context: dict, status: int = 200) -> HttpResponse:
    name = "web/copy_form.html" if request.htmx else "web/copy_page.html"
    return render(request, name, context, status=status)


def _key(request: HttpRequest) -> str | None:
    key = (request.POST.get(KEY_FIELD) or "")[:KEY_LENGTH]
    return f"{KEY_PREFIX}{key}" if key else None


def _already_done(request: HttpRequest, key: str | None) -> bool:
    """This form was subscribed with already (within the API's key lifetime)."""
    if key is None:
        return False
    since = timezone.now() - idempotency.LIFETIME
    return IdempotentRequest.objects.filter(user=request.user, key=key, created_at__gt=since).exists()


def _passcode_tag(portfolio: Portfolio) -> str:
    """Which passcode was let in, without keeping it: a digest of its salted hash."""
    return hashlib.sha256(f"passcode-ok:{portfolio.passcode_hash}".encode()).hexdigest()[:16]


def _passcode_known(request: HttpRequest, portfolio: Portfolio) -> bool:
    return request.session.get(PASSCODE_OK, {}).get(str(portfolio.pk)) == _passcode_tag(portfolio)


def _passcode_remember(request: HttpRequest, portfolio: Portfolio, *, right: bool) -> None:
    known = dict(request.session.get(PASSCODE_OK, {}))
    if right:
        known[str(portfolio.pk)] = _passcode_tag(portfolio)
    else:
        known.pop(str(portfolio.pk), None)
    request.session[PASSCODE_OK] = known


def _passcode_check(request: HttpRequest, portfolio: Portfolio, passcode: str | None) -> None:
    """``passcode_check`` as the API calls it; a passcode it takes is remembered
    for this portfolio, one it refuses forgets the earlier."""
    try:
        passcode_check(
            user=request.user, portfolio=portfolio, passcode=passcode, client_address=client_address(request)
        )
    except DomainError:
        if passcode:
            _passcode_remember(request, portfolio, right=False)
        raise
    if passcode:
        _passcode_remember(request, portfolio, right=True)


def _preview_let_in(request: HttpRequest, portfolio: Portfolio) -> bool:
    """May the preview run: raises the passcode's refusal when the reader just
    gave one (its own field changed: the only preview that sends it); else
    False when the portfolio needs a passcode this session has not had right.
    ``passcode_check`` without a passcode says who needs one (not a public
    portfolio's readers, nor its leader) and counts no attempt."""
    if "passcode" in request.POST:
        # Its field changed: a passcode let in before no longer speaks for it.
        _passcode_remember(request, portfolio, right=False)
        try:
            # The API's field (its length) before anything is counted.
            passcode = SimulateSerializer().fields["passcode"].run_validation(request.POST["passcode"])
        except serializers.ValidationError as exc:
            (message, *_) = serializer_errors(exc.detail)[FORM]
            raise DomainError("INVALID_PASSCODE", message, field="passcode") from None
        _passcode_check(request, portfolio, passcode or None)
        return True
    if _passcode_known(request, portfolio):
        return True
    try:
        passcode_check(user=request.user, portfolio=portfolio, passcode=None)
    except DomainError as exc:
        if exc.code == "PASSCODE_REQUIRED":
            return False
        raise
    return True


def _fingerprint(request: HttpRequest) -> str:
    body = "&".join(f"{k}={v}" for k, v in sorted(request.POST.items()) if k != "csrfmiddlewaretoken")
    return hashlib.sha256(f"POST {request.path}\n{body}".encode()).hexdigest()


def _subscribe(request: HttpRequest, portfolio: Portfolio, data: dict, key: str | None) -> None:
    """What the API's subscribe does, in its order: the passcode outside the
    transaction (its attempt count commits), then the subscribe with the key's
    record in one transaction (both or neither)."""
    data = dict(data)
    data.pop("portfolio")
    _passcode_check(request, portfolio, data.pop("passcode", None))
    if _already_done(request, key):
        return
    services.exchange_binding_check(
        follower=request.user, amount=data["amount"], exchange_account_id=data.get("exchange_account_id")
    )
    with transaction.atomic():
        subscription = services.subscription_open(follower=request.user, portfolio=portfolio, **data)
        if key is not None:
            IdempotentRequest.objects.create(
                user=request.user,
                key=key,
                fingerprint=_fingerprint(request),
                status_code=201,
                body={"id": subscription.pk},
            )


@login_required
@require_http_methods(["GET", "POST"])
def copy_view(request: HttpRequest, pk: int) -> HttpResponse:
    portfolio = get_object_or_404(Portfolio, pk=pk)
    if request.method == "GET":
        return _render_form(request, _context(request, portfolio))
    key = _key(request)
    data, errors = validated(SubscribeSerializer, {**_posted(request.POST), "portfolio": portfolio.pk})
    status, code, retry_after = 400, None, None
    if data is not None:
        try:
            _subscribe(request, portfolio, data, key)
        except DomainError as exc:
            # A racing double submit: the first one's record says it is done.
            if not (exc.code == "ALREADY_SUBSCRIBED" and _already_done(request, key)):
                errors, status, code = domain_errors(exc), exc.status, exc.code
                retry_after = getattr(exc, "retry_after", None)
        if not errors:
            messages.success(request, f"You now copy {portfolio.name}.")
            if request.htmx:
                return HttpResponseClientRedirect(reverse("web-copies"))
            return redirect("web-copies")
    answer = _render_form(request, _context(request, portfolio, errors=errors, refusal=code), status)
    if retry_after is not None:
        answer["Retry-After"] = str(retry_after)
    return answer


@login_required
@require_POST
def preview_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The replay for the form as it stands; its messages also replace the
    ones next to the fields (out of band), so a bad value is said where it was
    typed. The passcode comes only with its own field's change (see the
    module's docstring); its messages are only touched then."""
    portfolio = get_object_or_404(Portfolio, pk=pk)
    body = _posted(request.POST)
    body.pop("passcode", None)
    result, status, retry_after, let_in = None, 200, None, False
    errors: Errors = {}
    try:
        let_in = _preview_let_in(request, portfolio)
    except DomainError as exc:
        errors, status = domain_errors(exc), exc.status
        retry_after = getattr(exc, "retry_after", None)
    if let_in and "amount" in body:
        data, errors = validated(SimulateSerializer, body)
        status = 400
        if data is not None:
            data = dict(data)
            try:
                result = simulator.portfolio_simulate(
                    user=request.user,
                    portfolio=portfolio,
                    amount=data.pop("amount"),
                    days=data.pop("days"),
                    template=data.pop("template", None),
                    **data,
                )
                status = 200
            except DomainError as exc:
                errors, status = domain_errors(exc), exc.status
                retry_after = getattr(exc, "retry_after", None)
    shown = ("amount", "template", "days", "portfolio", FORM, *SETTING_NAMES)
    if "passcode" in request.POST:
        shown = (*shown, "passcode")
    context = {
        "result": result,
        "needs_passcode": not let_in and not errors,
        "curve": [point["equity"] for point in result["equity_curve"]] if result else [],
        "errors": {field: messages for field, messages in errors.items() if field in shown},
        "unplaced": {field: messages for field, messages in errors.items() if field not in shown},
        "cleared": [field for field in shown if field not in errors],
        "currency": settings.PRIMARY_CURRENCY,
        "portfolio": portfolio,
    }
    # htmx swaps a 4xx in (app.js); the status still says what happened.
    answer = render(request, "web/copy_preview.html", context, status=status)
    if retry_after is not None:
        answer["Retry-After"] = str(retry_after)
    return answer


urlpatterns = [
    path("portfolios/<int:pk>/copy/", copy_view, name="web-copy"),
    path("portfolios/<int:pk>/copy/preview/", preview_view, name="web-copy-preview"),
]
