"""Every write of the auth room: tokens, login throttling, password changes."""

import hashlib
import math
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone

from copytrading import audit
from copytrading.auth.models import AuthToken, LoginThrottle
from copytrading.errors import DomainError

T = TypeVar("T")


class TooManyAttempts(DomainError):
    """429 with ``Retry-After`` (copytrading/api_errors.py reads ``retry_after``)."""

    status = 429

    def __init__(self, code: str, detail: str, *, retry_after: int):
        super().__init__(code, detail)
        self.retry_after = max(1, retry_after)


def hash_key(key: str) -> str:
    # Keys are 256 random bits: a fast hash is enough, a slow one would only
    # slow every request down.
    return hashlib.sha256(key.encode()).hexdigest()


# --- tokens ---------------------------------------------------------------------


@transaction.atomic
def auth_token_create(*, user) -> tuple[AuthToken, str]:
    """A new token for one login; returns the row and the raw key, which is
    never stored and cannot be shown again."""
    now = timezone.now()
    # Each login adds a row: drop this user's dead ones here rather than in a job.
    AuthToken.objects.filter(user=user).filter(Q(expires_at__lte=now) | Q(revoked_at__isnull=False)).delete()
    key = secrets.token_urlsafe(32)
    token = AuthToken.objects.create(
        user=user,
        key_hash=hash_key(key),
        prefix=key[:8],
        session_hash=user.get_session_auth_hash(),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.AUTH_TOKEN_LIFETIME_SECONDS),
    )
    return token, key


def auth_token_revoke(*, token: AuthToken, actor=None) -> bool:
    """Revoke one token (logout, or staff); False if it already was. Audited."""
    now = timezone.now()
    with transaction.atomic():
        revoked = bool(AuthToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now))
        if revoked:
            audit.record(actor=actor, action="revoke", target=token, changes={"revoked_at": (None, now)})
    return revoked


def auth_tokens_revoke_all(*, user) -> int:
    """Revoke every live token of the user (logout everywhere); how many."""
    now = timezone.now()
    return AuthToken.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=now).update(revoked_at=now)


def user_password_change(*, user, old_password: str, new_password: str, address: str | None) -> tuple[AuthToken, str]:
    """Change the password after checking the old one (counted like a login,
    and committed even when wrong), revoke every token of the user and return a
    new one for the caller."""
    if not login_check(username=user.get_username(), address=address, check=lambda: user.check_password(old_password)):
        raise DomainError("WRONG_PASSWORD", "The current password is wrong.", field="old_password")
    try:
        validate_password(new_password, user)
    except ValidationError as exc:
        raise DomainError("WEAK_PASSWORD", " ".join(exc.messages), field="new_password") from None
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        # The new password hash already makes every token stale (session_hash);
        # revoking them too keeps the admin's token list truthful.
        auth_tokens_revoke_all(user=user)
        return auth_token_create(user=user)


# --- throttling -----------------------------------------------------------------


def username_throttle_key(username: str) -> str:
    return f"user:{username.strip().lower()[:200]}"


def address_throttle_key(address: str) -> str:
    return f"addr:{address}"


@transaction.atomic
def throttle_count(
    *, limits: dict[str, int], window_seconds: int, lockout_seconds: int, code: str, detail: str
) -> None:
    """Count one attempt under every key, or refuse it (TooManyAttempts) if
    any key is locked. Counted under the row locks (taken in key order) before
    the caller checks anything, so parallel attempts never exceed a limit."""
    now = timezone.now()
    keys = sorted(limits)
    LoginThrottle.objects.bulk_create(
        [LoginThrottle(key=key, window_started_at=now) for key in keys], ignore_conflicts=True
    )
    rows = list(LoginThrottle.objects.select_for_update().filter(key__in=keys).order_by("key"))
    locked = [row.locked_until for row in rows if row.locked_until and row.locked_until > now]
    if locked:
        raise TooManyAttempts(code, detail, retry_after=math.ceil((max(locked) - now).total_seconds()))
    for row in rows:
        if row.locked_until is not None or row.window_started_at <= now - timedelta(seconds=window_seconds):
            row.attempts, row.window_started_at, row.locked_until = 0, now, None
        row.attempts += 1
        if row.attempts >= limits[row.key]:
            row.locked_until = now + timedelta(seconds=lockout_seconds)
        row.save(update_fields=["attempts", "window_started_at", "locked_until"])


def login_check(*, username: str, address: str | None, check: Callable[[], T]) -> T:
    """Run ``check`` (compare a password) as a counted login attempt: refused
    with 429 LOGIN_LOCKED while the username or the address is locked out. A
    success forgets the username's failures and un-counts itself from the
    address (whose failures stay: a client cannot clear its address's count by
    logging in to an account of its own)."""
    limits = {username_throttle_key(username): settings.LOGIN_MAX_FAILURES_PER_USERNAME}
    if address:
        limits[address_throttle_key(address)] = settings.LOGIN_MAX_FAILURES_PER_ADDRESS
    throttle_count(
        limits=limits,
        window_seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS,
        lockout_seconds=settings.LOGIN_LOCKOUT_SECONDS,
        code="LOGIN_LOCKED",
        detail="Too many failed logins for this account or from this address; retry later.",
    )
    result = check()
    if result:
        login_throttle_succeeded(username=username, address=address)
    return result


@transaction.atomic
def login_throttle_succeeded(*, username: str, address: str | None) -> None:
    # Rows are locked in key order, as throttle_count does ("addr:" < "user:"),
    # or two logins of one user from one address deadlock.
    if address:
        limit = settings.LOGIN_MAX_FAILURES_PER_ADDRESS
        LoginThrottle.objects.filter(key=address_throttle_key(address), attempts__gt=0).update(
            # attempts is the value before this update: after it, below the limit
            locked_until=Case(When(attempts__lte=limit, then=None), default=F("locked_until")),
            attempts=F("attempts") - 1,
        )
    LoginThrottle.objects.filter(key=username_throttle_key(username)).update(attempts=0, locked_until=None)


@transaction.atomic
def login_throttle_clear(*, keys: list[str], actor=None) -> int:
    """Lift lockouts and forget the counts (staff, from the admin); each row
    lifted leaves an audit entry with what it held."""
    rows = list(LoginThrottle.objects.select_for_update().filter(key__in=keys).order_by("pk"))
    for row in rows:
        audit.record(
            actor=actor,
            action="unlock",
            target=row,
            changes={"attempts": (row.attempts, None), "locked_until": (row.locked_until, None)},
        )
    return LoginThrottle.objects.filter(pk__in=[row.pk for row in rows]).delete()[0]


def registration_count(*, address: str) -> None:
    """Count one registration from the address (429 REGISTRATION_THROTTLED
    beyond the limit per window)."""
    throttle_count(
        limits={f"register:{address}": settings.REGISTER_MAX_PER_ADDRESS},
        window_seconds=settings.REGISTER_WINDOW_SECONDS,
        lockout_seconds=settings.REGISTER_WINDOW_SECONDS,
        code="REGISTRATION_THROTTLED",
        detail="Too many registrations from this address; retry later.",
    )
