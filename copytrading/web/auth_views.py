"""Log in, register, log out: the session the pages (and the stream) use.

The same checks as the API: logins go through the throttled backend (the
lockout per username and per address, ``TooManyAttempts``), registrations are
counted per address, the API's serializer checks the fields and
``services.user_register`` the rules."""

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from copytrading import services
from copytrading.auth.client import client_address
from copytrading.auth.services import TooManyAttempts, registration_count
from copytrading.errors import DomainError
from copytrading.serializers import RegisterSerializer, TokenSerializer
from copytrading.web.forms import FORM, domain_errors, validated


def _next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    ok = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return target if ok else "/"


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    errors: dict = {}
    status = 200
    if request.method == "POST":
        data, errors = validated(TokenSerializer, request.POST)
        if data is not None:
            try:
                user = authenticate(request, **data)
            except TooManyAttempts as exc:
                errors, status = {FORM: [exc.detail]}, 429
            else:
                if user is not None:
                    login(request, user)
                    return redirect(_next(request))
                errors = {FORM: ["Wrong username or password."]}
        status = status if status != 200 else 400
    form = {"username": request.POST.get("username", "")[:150]}
    context = {"errors": errors, "form": form, "next": _next(request)}
    return render(request, "web/login.html", context, status=status)


@require_http_methods(["GET", "POST"])
def register_view(request: HttpRequest) -> HttpResponse:
    errors: dict = {}
    status = 200
    if request.method == "POST":
        try:
            # Every attempt counts, valid or not, as the API's throttle counts it.
            registration_count(address=client_address(request))
            data, errors = validated(RegisterSerializer, request.POST)
            status = 400
            user = services.user_register(**data) if data is not None else None
        except DomainError as exc:
            errors, status, user = domain_errors(exc), exc.status, None
        if user is not None:
            login(request, user, backend="copytrading.auth.backends.ThrottledModelBackend")
            messages.success(request, f"Welcome, {user.get_username()}. Deposit paper money to start copying.")
            return redirect("web-wallet")
    form = {key: request.POST.get(key, "")[:254] for key in ("username", "email")}
    return render(request, "web/register.html", {"errors": errors, "form": form}, status=status)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("web-leaderboard")
