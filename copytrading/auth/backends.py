"""The login backend of the API (POST auth/token) and the admin alike: Django's
ModelBackend, each call counted by the login throttle before the password is
compared (a lockout raises TooManyAttempts, which propagates out of
``authenticate()``: the API answers it through its exception handler, the admin
through LoginLockoutMiddleware)."""

from django.contrib.auth.backends import ModelBackend

from copytrading.auth.client import client_address
from copytrading.auth.services import login_check


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        return login_check(
            username=str(username),
            address=client_address(request) if request is not None else None,
            check=lambda: super(ThrottledModelBackend, self).authenticate(
                request, username=username, password=password, **kwargs
            ),
        )
