"""Private portfolios: the hashed 8-digit passcode and its throttled check.

Wrong attempts are counted per account and per client address (each over
every portfolio), and per portfolio. The first two lock *their own* account or
address out for a while. A portfolio is never locked (docs/decisions.md): when
its wrong attempts in the window reach PASSCODE_MAX_ATTEMPTS_PER_PORTFOLIO it
is *slowed*: from then until the window ends, each account gets one attempt
on it and each address PASSCODE_SLOWED_ATTEMPTS_PER_ADDRESS; a further try is
429 with Retry-After, decided before comparing. Anyone's first try is always
compared, so a follower who knows the code gets in whatever others guess.

Each attempt is *counted before* the passcode is compared, in its own
committed transaction, under the counter rows' locks: N parallel wrong
attempts can never get more than the limit compared, and a refused subscribe
cannot roll its attempt back. A right passcode gives its attempt back.
PostgreSQL locks the rows (``SELECT ... FOR UPDATE`` in pk order); SQLite
(embedded mode) runs write transactions one at a time (``IMMEDIATE``), and the
insert that opens the transaction takes that write lock first.
"""

import hashlib
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from copytrading.auth.client import address_group
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


def attempts_in_window(counter: Counter, *, now: datetime, window: timedelta) -> int:
    if counter.window_started_at is None or now >= counter.window_started_at + window:
        return 0
    return counter.attempts


def window_end(counter: Counter, *, window: timedelta) -> datetime:
    return counter.window_started_at + window


# Counters that only count (they never lock by themselves): the portfolio's,
# and one account's or one address's attempts on one portfolio.
NEVER = 2**31 - 1


def limits_for(scope: str) -> Limits:
    maximum = {
        Scope.USER: settings.PASSCODE_MAX_ATTEMPTS_PER_USER,
        Scope.ADDRESS: settings.PASSCODE_MAX_ATTEMPTS_PER_ADDRESS,
    }.get(scope, NEVER)
    return Limits(
        max_attempts=maximum,
        window=timedelta(seconds=settings.PASSCODE_WINDOW_SECONDS),
        lockout=timedelta(seconds=settings.PASSCODE_LOCKOUT_SECONDS),
    )


def slowed_limit(scope: str) -> int | None:
    """How many attempts on a slowed portfolio one account / one address gets."""
    return {
        Scope.USER_PORTFOLIO: settings.PASSCODE_SLOWED_ATTEMPTS_PER_ACCOUNT,
        Scope.ADDRESS_PORTFOLIO: settings.PASSCODE_SLOWED_ATTEMPTS_PER_ADDRESS,
    }.get(scope)


def subject_id(*parts) -> int:
    """A stable 63-bit id for a composite subject (an address, a pair)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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


def _retry_after(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def _attempt_take(subjects: list[tuple[str, int]]) -> None:
    now = timezone.now()
    window = timedelta(seconds=settings.PASSCODE_WINDOW_SECONDS)
    with transaction.atomic():
        rows = _locked_counters(subjects)
        taken = [(row, attempt_take(_counter(row), now=now, limits=limits_for(row.scope))) for row in rows]
        lock_ends = [result for _, result in taken if isinstance(result, datetime)]
        if lock_ends:
            # Nothing is counted while the account or the address is locked.
            raise PasscodeLocked(retry_after=_retry_after(max(lock_ends), now))
        by_scope = {row.scope: row for row in rows}
        portfolio = _counter(by_scope[Scope.PORTFOLIO])
        if attempts_in_window(portfolio, now=now, window=window) >= settings.PASSCODE_MAX_ATTEMPTS_PER_PORTFOLIO:
            # The portfolio is slowed: whoever already tried it in this window
            # waits; a first try is still compared (never a lockout).
            for row in rows:
                allowed = slowed_limit(row.scope)
                counter = _counter(row)
                if allowed is not None and attempts_in_window(counter, now=now, window=window) >= allowed:
                    until = min(window_end(counter, window=window), window_end(portfolio, window=window))
                    raise PasscodeLocked(retry_after=_retry_after(until, now))
        for row, counter in taken:
            _save(row, counter)


def _attempt_give_back(subjects: list[tuple[str, int]]) -> None:
    with transaction.atomic():
        for row in _locked_counters(subjects):
            _save(row, attempt_give_back(_counter(row), limits=limits_for(row.scope)))


def passcode_check(*, user, portfolio: Portfolio, passcode: str | None, client_address: str | None = None) -> None:
    """Let ``user`` into ``portfolio`` or raise: PASSCODE_REQUIRED (403),
    PASSCODE_INVALID (403), PASSCODE_LOCKED (429). Public portfolios and the
    leader's own need no passcode. ``client_address`` is the request's
    address (copytrading.auth.client: REMOTE_ADDR, or X-Forwarded-For from TRUSTED_PROXIES).

    Call it outside any transaction: the attempt count must commit even when
    the caller's work is then refused and rolled back."""
    row = Portfolio.objects.filter(pk=portfolio.pk).values("is_public", "passcode_hash", "leader_id").first()
    if row is None or row["is_public"] or row["leader_id"] == user.pk:
        return
    if not passcode:
        raise DomainError(
            "PASSCODE_REQUIRED", "This portfolio is private: send its passcode.", field="passcode", status=403
        )
    address = address_group(client_address)
    subjects = [
        (Scope.USER, user.pk),
        (Scope.ADDRESS, subject_id("address", address)),
        (Scope.PORTFOLIO, portfolio.pk),
        (Scope.USER_PORTFOLIO, subject_id("user", user.pk, portfolio.pk)),
        (Scope.ADDRESS_PORTFOLIO, subject_id("address", address, portfolio.pk)),
    ]
    _attempt_take(subjects)
    if check_password(passcode, row["passcode_hash"]):
        _attempt_give_back(subjects)
        return
    raise DomainError("PASSCODE_INVALID", "The passcode is not right.", field="passcode", status=403)
