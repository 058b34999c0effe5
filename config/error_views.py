"""Errors under /api/ are the API's JSON shape, also where DRF is not involved.

DRF views answer through copytrading.api_errors. What happens before or
outside them (a URL that resolves to nothing, Django's own 400 for a
suspicious request or a too-big body, a 500 from middleware) goes through
Django's handlers below; ``ApiJsonErrors`` is the net for any other non-JSON
error response under /api/ (a 405 from a plain Django view, a CSRF 403).
Pages outside /api/ (the admin, the client pages) keep Django's HTML.
"""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

log = logging.getLogger(__name__)

API_PREFIX = "/api/"

# The same codes DRF's exceptions carry (copytrading.api_errors upper-cases them).
STATUS_CODES = {
    400: ("BAD_REQUEST", "The request is malformed."),
    401: ("NOT_AUTHENTICATED", "Authentication credentials were not provided."),
    403: ("PERMISSION_DENIED", "You do not have permission to perform this action."),
    404: ("NOT_FOUND", "Not found."),
    405: ("METHOD_NOT_ALLOWED", "This method is not allowed here."),
    406: ("NOT_ACCEPTABLE", "Could not satisfy the request's Accept header."),
    413: ("PAYLOAD_TOO_LARGE", "The request body is too large."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type."),
    429: ("THROTTLED", "Too many requests; retry later."),
    500: ("SERVER_ERROR", "Something went wrong on our side; it has been logged."),
    503: ("SERVICE_UNAVAILABLE", "The service is busy; retry shortly."),
}


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def api_error(status: int, detail: str | None = None, code: str | None = None) -> JsonResponse:
    default_code, default_detail = STATUS_CODES.get(status, ("ERROR" if status < 500 else "SERVER_ERROR", "Error."))
    body = {"code": code or default_code, "detail": detail or default_detail, "field": None}
    return JsonResponse(body, status=status)


def too_large(request: HttpRequest) -> JsonResponse:
    detail = f"The request body must be at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
    return api_error(413, detail)


def bad_request(request, exception, template_name="400.html"):
    if isinstance(exception, RequestDataTooBig):
        # Raised by Django when a body past DATA_UPLOAD_MAX_MEMORY_SIZE is read.
        return too_large(request) if is_api(request) else HttpResponse(status=413)
    if is_api(request):
        return api_error(400)
    return defaults.bad_request(request, exception, template_name)


def permission_denied(request, exception, template_name="403.html"):
    if is_api(request):
        return api_error(403)
    return defaults.permission_denied(request, exception, template_name)


def page_not_found(request, exception, template_name="404.html"):
    if is_api(request):
        return api_error(404, "There is no such resource.")
    return defaults.page_not_found(request, exception, template_name)


def server_error(request, template_name="500.html"):
    if is_api(request):
        return api_error(500)
    return defaults.server_error(request, template_name)


class ApiJsonErrors:
    """Rewrites any non-JSON error response under /api/ into the API's shape."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not is_api(request) or response.status_code < 400 or response.streaming:
            return response
        if response.get("Content-Type", "").startswith(("application/json", "application/problem+json")):
            return response
        rewritten = api_error(response.status_code)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if response.has_header(header):
                rewritten[header] = response[header]
        if response.status_code >= 500:
            log.error("non-JSON %s under %s rewritten: %.200r", response.status_code, request.path, response.content)
        return rewritten
