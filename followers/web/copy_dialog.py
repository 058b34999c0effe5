"""Copy a portfolio (being built)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


@login_required
def view(request: HttpRequest, **kwargs) -> HttpResponse:
    return render(request, "web/placeholder.html", {"title": "Copy a portfolio"})


urlpatterns = [path("portfolios/<int:pk>/copy/", view, name="web-copy")]
