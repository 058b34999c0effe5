import json

from django.http import HttpResponse

from copytrading.auth.services import TooManyAttempts


class LoginLockoutMiddleware:
    """Turns a login lockout raised outside DRF (the admin's login form) into
    429 with Retry-After instead of a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, TooManyAttempts):
            return None
        body = {"code": exception.code, "detail": exception.detail, "field": None}
        if request.path.startswith("/api/"):
            response = HttpResponse(json.dumps(body), status=429, content_type="application/json")
        else:
            response = HttpResponse(exception.detail, status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(exception.retry_after)
        return response
