"""A leader's money: earnings, withdrawals, the webhook secret, closing (being built)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


@login_required
def view(request: HttpRequest, **kwargs) -> HttpResponse:
    return render(request, "web/placeholder.html", {"title": "Earnings"})


urlpatterns = [path("me/portfolios/<int:pk>/earnings/", view, name="web-leader-money")]
