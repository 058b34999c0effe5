"""Row locks: the one order every transaction takes them in.

A transaction that locks rows of several kinds takes them in this order,
each kind in ascending primary key, and never goes back to an earlier kind:

1. **portfolio** rows (``portfolios.locks``): a portfolio's trades, its
   leader-event sequence numbers, its status and settings. Taken by the
   leader's orders, the price-driven matching, subscribing and the close.
2. **subscription** rows (``followers.locks``): a copy's status, settings
   and money in and out (top-up, withdraw, pause, unfollow, the watchdog).
3. ledger **accounts** (``copytrading.ledger.lock_accounts`` /
   ``lock_balances``): balances and locked margin.
4. **positions**, 5. **orders**, 6. **holdings** (``for_update`` below).

The core locks kinds 3 to 6 only; the apps above it own the helpers for
their rows (the core never imports them). The propagation chunk locks its
checkpoint row first (``of=("self",)``: never the event row it joins), then
accounts, positions, orders, holdings; it locks no portfolio or
subscription row, so a leader's next trade never waits for a fan-out.

A lock on a row of one kind never takes a row of another kind with it: a
``select_related`` under ``select_for_update`` names ``of=("self",)``.
In particular a copy's top-up, withdrawal, settings change or pause locks
the subscription only and reads the portfolio's status unlocked, so it never
waits behind the leader's trades (docs/decisions.md, "Lock order").
"""

from django.db.models import QuerySet

LOCK_ORDER = ("portfolio", "subscription", "account", "position", "order", "holding")


def for_update(queryset: QuerySet) -> QuerySet:
    """``queryset``'s own rows locked in ascending id (never a joined row)."""
    return queryset.select_for_update(of=("self",)).order_by("pk")
