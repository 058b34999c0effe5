"""The admin's "Export CSV" link: the list the staff member is looking at
(its filters, search, date drill-down and ordering, through the model
admin's own changelist), as a streamed CSV of the matching report."""

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest

from backoffice.reports.kinds import REPORTS
from backoffice.reports.stream import csv_blocks, csv_response

# Changelist parameters that pick a page or show an error, not rows.
NOT_FILTERS = ("p", "e")


def export_view(request: HttpRequest, kind: str) -> HttpResponse:
    report = REPORTS.get(kind)
    if report is None:
        raise Http404(f"No report named {kind!r}.")
    model_admin = admin.site.get_model_admin(report.model)
    if not model_admin.has_view_or_change_permission(request):
        raise PermissionDenied
    # The whole filtered list, not the page on screen.
    request.GET = request.GET.copy()
    for name in NOT_FILTERS:
        request.GET.pop(name, None)
    try:
        changelist = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters:
        return HttpResponseBadRequest(
            "The list's filters are not valid: open the list again and export from there.",
            content_type="text/plain",
        )
    return csv_response(request, report, csv_blocks(report, changelist.queryset))
