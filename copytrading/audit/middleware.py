"""The audit actor of a request.

django-auditlog's middleware takes the user when the request comes in, but
the API authenticates later, inside DRF (a token), and DRF then sets the user
on the Django request too. So the actor is looked up when an entry is written,
not when the request arrives: the admin's session user and the API's token
user alike, and nobody for an anonymous request."""

from auditlog.context import auditlog_value
from auditlog.middleware import AuditlogMiddleware
from django.contrib.auth import get_user_model

from copytrading.auth.client import client_address


class AuditActorMiddleware(AuditlogMiddleware):
    @staticmethod
    def _get_remote_addr(request):
        # The client's address as the login throttle sees it: X-Forwarded-For
        # is believed only from TRUSTED_PROXIES (auditlog would take its first
        # value, whatever the client wrote).
        address = client_address(request)
        return None if address == "unknown" else address

    @staticmethod
    def _get_actor(request):
        def actor():
            user = getattr(request, "user", None)
            if isinstance(user, get_user_model()) and user.is_authenticated:
                return user
            return None

        return actor

    def __call__(self, request):
        # django-auditlog leaves its context set after the request; work done
        # later in the same thread (a job, the next request's set-up) must not
        # inherit this request's actor.
        token = auditlog_value.set({})
        try:
            return super().__call__(request)
        finally:
            auditlog_value.reset(token)
