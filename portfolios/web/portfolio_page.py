"""A portfolio (being built)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


def view(request: HttpRequest, **kwargs) -> HttpResponse:
    return render(request, "web/placeholder.html", {"title": "A portfolio"})


urlpatterns = [path("portfolios/<int:pk>/", view, name="web-portfolio")]
