"""Rows of the auth room; imported by copytrading.models so they belong to the
``copytrading`` app."""

from django.conf import settings
from django.db import models


class AuthToken(models.Model):
    """One login of one client. Only the SHA-256 of the key is stored: the raw
    key is shown once, in the response that created it.

    ``session_hash`` is the user's session auth hash when the token was made
    (an HMAC of the password hash, as Django keeps in sessions): any password
    change, through the API, the admin or a shell, makes it stale, so the token
    stops working without a signal or a hook."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    # The first characters of the key, to tell tokens apart in the admin.
    prefix = models.CharField(max_length=8)
    session_hash = models.CharField(max_length=128)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="auth_token_user_expiry")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user_id})"


class LoginThrottle(models.Model):
    """Login (or registration) attempts counted under one key: ``user:<name>``,
    ``addr:<address>`` or ``register:<address>``. copytrading/auth/services.py
    counts an attempt under the row lock *before* the password is compared, so
    parallel requests never get more than the limit compared."""

    key = models.CharField(max_length=255, unique=True)
    attempts = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.attempts}"
