"""/me/notifications/: the list, live, with mark read and preferences."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def notifications_view(request: HttpRequest) -> HttpResponse:
    return render(request, "web/notifications.html", {})
