"""What a transaction changed, told once after it commits.

Writers say which rows they touched — ``touch(accounts=…)`` from the ledger
and the venue, ``touch(subscriptions=…)`` from the fan-out, ``touch(users=…)``
from notifications and lifecycle changes, ``touch(marks=…)`` from the price
writer (the marks of a simulator tick go out together) — and every registered listener is
called once per committed transaction with the union (``Changes``). The live
stream is the listener: it tells the web processes which sockets must reload
what they show. Nothing is told for a transaction that rolls back; a
savepoint rolled back inside a committed transaction may leave ids in the
union, which costs a listener one needless reload, never a missed one.

Touching is cheap (a set update) and sends nothing until the commit, so the
fan-out touching 500 accounts per chunk costs one notice per chunk.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction

log = logging.getLogger(__name__)


@dataclass
class Changes:
    accounts: set[int] = field(default_factory=set)
    subscriptions: set[int] = field(default_factory=set)
    users: set[int] = field(default_factory=set)
    portfolios: set[int] = field(default_factory=set)
    # instrument id -> (mark, its time as epoch seconds): the last mark written
    marks: dict[int, tuple[Decimal, float]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.accounts or self.subscriptions or self.users or self.portfolios or self.marks)


ChangeListener = Callable[[Changes], None]
_listeners: list[ChangeListener] = []


def register_change_listener(listener: ChangeListener) -> None:
    """Have ``listener(changes)`` called after every commit that touched
    something. Registering twice is a no-op; a listener that raises is
    logged and never undoes the commit."""
    if listener not in _listeners:
        _listeners.append(listener)


def _tell(changes: Changes) -> None:
    for listener in _listeners:
        try:
            listener(changes)
        except Exception:
            log.exception("change listener %r failed", listener)


class _Pending:
    """The union for one transaction, with its one on-commit callback."""

    __slots__ = ("changes",)

    def __init__(self) -> None:
        self.changes = Changes()

    def __call__(self) -> None:
        _tell(self.changes)


def touch(
    *,
    accounts: Iterable[int] = (),
    subscriptions: Iterable[int] = (),
    users: Iterable[int] = (),
    portfolios: Iterable[int] = (),
    marks: dict[int, tuple[Decimal, float]] | None = None,
) -> None:
    """Record that the current transaction changed these rows (outside a
    transaction: tell the listeners now)."""
    if not _listeners:
        return
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        _tell(Changes(set(accounts), set(subscriptions), set(users), set(portfolios), dict(marks or {})))
        return
    # The callback registered by an earlier touch in this transaction, if it
    # is still queued (a rolled-back savepoint drops it with its callbacks).
    pending = next(
        (callback for _, callback, _ in reversed(connection.run_on_commit) if isinstance(callback, _Pending)), None
    )
    if pending is None:
        pending = _Pending()
        transaction.on_commit(pending)
    pending.changes.accounts.update(accounts)
    pending.changes.subscriptions.update(subscriptions)
    pending.changes.users.update(users)
    pending.changes.portfolios.update(portfolios)
    if marks:
        pending.changes.marks.update(marks)
