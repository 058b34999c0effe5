"""Read replicas: where the reads that may lag the primary go (docs/decisions.md §82).

``DATABASE_REPLICA_URLS`` adds the aliases ``replica1``, ``replica2``, ... (config/settings.py).
No router guesses: a selector whose readers can take data a replication delay old (the
public catalog, statistics, score history, closed trades, report exports) asks for
``.using(replica_alias())`` by name; every other read, and every write, uses the primary.

``replica_alias()`` still answers ``"default"``
- when no replica is configured (embedded mode, one machine: nothing changes),
- inside a transaction on the primary (the transaction's own writes and locks are there),
- after this request or task wrote through the ORM (read-your-writes): the router below
  notes each write. The note is per context (an ASGI request, a Celery task) and is cleared
  when the next request or task starts.
"""

import random
from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

# The replica this context reads from (one per request or task, so its reads see one
# replica's state), or DEFAULT_DB_ALIAS once it wrote.
_chosen: ContextVar[str | None] = ContextVar("replica_chosen", default=None)


def replica_alias() -> str:
    """The alias for a read that may be a replication delay old."""
    replicas = settings.DATABASE_REPLICAS
    if not replicas or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    chosen = _chosen.get()
    if chosen is None or (chosen != DEFAULT_DB_ALIAS and chosen not in replicas):
        chosen = random.choice(replicas)
        _chosen.set(chosen)
    return chosen


def pin_to_primary() -> None:
    """From now on this request or task reads the primary (it wrote, or must see the latest)."""
    _chosen.set(DEFAULT_DB_ALIAS)


def reset(**_kwargs) -> None:
    """A new request or task: it has written nothing yet (signal receiver)."""
    _chosen.set(None)


def connect() -> None:
    """Clear the note at each request's and each Celery task's start (a worker
    process runs many tasks in one context)."""
    from celery.signals import task_prerun
    from django.core.signals import request_started

    request_started.connect(reset, dispatch_uid="copytrading.replicas.reset")
    task_prerun.connect(reset, dispatch_uid="copytrading.replicas.reset", weak=False)


class PrimaryWritesRouter:
    """Installed only with replicas (settings.DATABASE_ROUTERS). Every write goes to
    the primary, even of a row read from a replica, and pins the context to the
    primary; reads are left to the caller (the primary unless it names a replica, or
    the replica a related row was read from); migrations run on the primary only."""

    def db_for_read(self, model, **hints) -> None:
        return None

    def db_for_write(self, model, **hints) -> str:
        pin_to_primary()
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        # A replica holds the primary's rows: a row read there may be related to one read here.
        same_data = {DEFAULT_DB_ALIAS, *settings.DATABASE_REPLICAS}
        if obj1._state.db in same_data and obj2._state.db in same_data:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints) -> bool | None:
        return False if db in settings.DATABASE_REPLICAS else None
