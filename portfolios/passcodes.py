"""Private portfolios: the hashed 8-digit passcode and its throttled check.

Throttling is per user (over every portfolio) and per portfolio (over every
user). Each attempt is *counted before* the passcode is compared, in its own
committed transaction, under the two counter rows' locks: N parallel wrong
attempts can never get more than the limit compared, and a refused subscribe
cannot roll its attempt back. A right passcode gives its attempt back.
PostgreSQL locks the rows (``SELECT ... FOR UPDATE`` in pk order); SQLite
(embedded mode) runs write transactions one at a time (``IMMEDIATE``), and the
insert that opens the transaction takes that write lock first.
"""

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from copytrading.errors import DomainError
from portfolios.models import PasscodeThrottle, Portfolio

Scope = PasscodeThrottle.Scope


class PasscodeLocked(DomainError):
    """Too many wrong passcodes: refused without comparing, until ``retry_after``
    seconds have passed (sent as the Retry-After header)."""

    status = 429

    def __init__(self, retry_after: int):
        super().__init__(
            "PASSCODE_LOCKED",
            f"Too many wrong passcodes; try again in {retry_after} seconds.",
            field="passcode",
        )
        self.retry_after = retry_after


def passcode_hash(passcode: str) -> str:
    return make_password(passcode)


# --- the counting rule (pure) -----------------------------------------------------


@dataclass(frozen=True)
class Counter:
    attempts: int
    window_started_at: datetime | None
    locked_until: datetime | None


@dataclass(frozen=True)
class Limits:
    max_attempts: int
    window: timedelta
    lockout: timedelta


def attempt_take(counter: Counter, *, now: datetime, limits: Limits) -> Counter | datetime:
    """The counter after one more attempt, or the time the lock ends when the
    attempt is refused. The attempt that reaches the limit is still compared;
    the next ones are refused until the lockout has passed."""
    if counter.locked_until is not None and now < counter.locked_until:
        return counter.locked_until
    if (
        counter.locked_until is not None
        or counter.window_started_at is None
        or now >= counter.window_started_at + limits.window
    ):
        counter = Counter(attempts=0, window_started_at=now, locked_until=None)
    attempts = counter.attempts + 1
    locked_until = now + limits.lockout if attempts >= limits.max_attempts else None
    return replace(counter, attempts=attempts, locked_until=locked_until)


def attempt_give_back(counter: Counter, *, limits: Limits) -> Counter:
    """A right passcode was not a wrong attempt: uncount it (and lift the lock
    its counting may have set)."""
    attempts = max(counter.attempts - 1, 0)
    locked_until = counter.locked_until if attempts >= limits.max_attempts else None
    return replace(counter, attempts=attempts, locked_until=locked_until)


def limits_for(scope: str) -> Limits:
    maximum = (
        settings.PASSCODE_MAX_ATTEMPTS_PER_USER if scope == Scope.USER else settings.PASSCODE_MAX_ATTEMPTS_PER_PORTFOLIO
    )
    return Limits(
        max_attempts=maximum,
        window=timedelta(seconds=settings.PASSCODE_WINDOW_SECONDS),
        lockout=timedelta(seconds=settings.PASSCODE_LOCKOUT_SECONDS),
    )


# --- the counters in the database ---------------------------------------------------


def _locked_counters(subjects: list[tuple[str, int]]) -> list[PasscodeThrottle]:
    # Insert the missing rows first (ON CONFLICT DO NOTHING): on SQLite this
    # write takes the database's write lock before anything is read.
    PasscodeThrottle.objects.bulk_create(
        [PasscodeThrottle(scope=scope, subject_id=pk) for scope, pk in subjects], ignore_conflicts=True
    )
    match = Q()
    for scope, pk in subjects:
        match |= Q(scope=scope, subject_id=pk)
    return list(PasscodeThrottle.objects.select_for_update().filter(match).order_by("pk"))


def _save(row: PasscodeThrottle, counter: Counter) -> None:
    PasscodeThrottle.objects.filter(pk=row.pk).update(
        attempts=counter.attempts, window_started_at=counter.window_started_at, locked_until=counter.locked_until
    )


def _counter(row: PasscodeThrottle) -> Counter:
    return Counter(row.attempts, row.window_started_at, row.locked_until)


def _attempt_take(subjects: list[tuple[str, int]]) -> None:
    now = timezone.now()
    with transaction.atomic():
        rows = _locked_counters(subjects)
        taken = [(row, attempt_take(_counter(row), now=now, limits=limits_for(row.scope))) for row in rows]
        lock_ends = [result for _, result in taken if isinstance(result, datetime)]
        if lock_ends:
            # Nothing is counted while either side is locked.
            raise PasscodeLocked(retry_after=max(1, math.ceil((max(lock_ends) - now).total_seconds())))
        for row, counter in taken:
            _save(row, counter)


def _attempt_give_back(subjects: list[tuple[str, int]]) -> None:
    with transaction.atomic():
        for row in _locked_counters(subjects):
            _save(row, attempt_give_back(_counter(row), limits=limits_for(row.scope)))


def passcode_check(*, user, portfolio: Portfolio, passcode: str | None) -> None:
    """Let ``user`` into ``portfolio`` or raise: PASSCODE_REQUIRED (403),
    PASSCODE_INVALID (403), PASSCODE_LOCKED (429). Public portfolios and the
    leader's own need no passcode.

    Call it outside any transaction: the attempt count must commit even when
    the caller's work is then refused and rolled back."""
    row = Portfolio.objects.filter(pk=portfolio.pk).values("is_public", "passcode_hash", "leader_id").first()
    if row is None or row["is_public"] or row["leader_id"] == user.pk:
        return
    if not passcode:
        raise DomainError(
            "PASSCODE_REQUIRED", "This portfolio is private: send its passcode.", field="passcode", status=403
        )
    subjects = [(Scope.USER, user.pk), (Scope.PORTFOLIO, portfolio.pk)]
    _attempt_take(subjects)
    if check_password(passcode, row["passcode_hash"]):
        _attempt_give_back(subjects)
        return
    raise DomainError("PASSCODE_INVALID", "The passcode is not right.", field="passcode", status=403)
