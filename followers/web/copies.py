"""My copies (being built)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


@login_required
def view(request: HttpRequest, **kwargs) -> HttpResponse:
    return render(request, "web/placeholder.html", {"title": "My copies"})


urlpatterns = [path("me/copies/", view, name="web-copies")]
