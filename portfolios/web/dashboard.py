"""My portfolios (being built)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


def view(request: HttpRequest, **kwargs) -> HttpResponse:
    return render(request, "web/placeholder.html", {"title": "My portfolios"})


urlpatterns = [path("me/portfolios/", view, name="web-leader")]
