"""The main wallet: its balance and the paper deposit (the API's serializer
and ``services.wallet_deposit``; the form's hidden key makes a double submit
one deposit)."""

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from copytrading import ledger, services
from copytrading.errors import DomainError
from copytrading.serializers import AmountSerializer
from copytrading.web.forms import domain_errors, validated

KEY_LENGTH = 64


@login_required
@require_http_methods(["GET", "POST"])
def wallet_view(request: HttpRequest) -> HttpResponse:
    errors: dict = {}
    status = 200
    if request.method == "POST":
        data, errors = validated(AmountSerializer, request.POST)
        status = 400
        key = (request.POST.get("idempotency_key") or "")[:KEY_LENGTH] or None
        if data is not None:
            try:
                _, created = services.wallet_deposit(user=request.user, amount=data["amount"], idempotency_key=key)
            except DomainError as exc:
                errors, status = domain_errors(exc), exc.status
            else:
                if created:
                    messages.success(request, "Deposit received.")
                return redirect("web-wallet")
    context = {
        "wallet": ledger.main_account_for(request.user),
        "errors": errors,
        "form": {"amount": request.POST.get("amount", "")[:40]},
        "idempotency_key": uuid.uuid4().hex,
    }
    return render(request, "web/wallet.html", context, status=status)
