"""What each topic shows: its snapshot, its deltas, what it reloads on.

A topic belongs to one stream (one socket's subscription). ``load`` and
``reload`` read the database (the hub runs them in a worker thread, only
when a notice concerns the topic); ``snapshot`` and ``delta`` are pure and
run on the event loop on every flush, valuing what the topic holds in memory
at the hub's marks.

Two shapes cover every topic: a ``StateTopic`` shows rows by key and sends
the rows that changed and the keys that went; an ``EventTopic`` sends new
items as they happen. The core registers ``prices``, ``positions`` and
``notifications``; apps above it register theirs in their ``ready``
(``register_topic``).
"""

from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet
from django.utils import timezone

from copytrading.stream import selectors
from copytrading.stream.book import Book
from copytrading.stream.protocol import MAX_INSTRUMENTS, ProtocolError

Key = tuple[str, int]  # ("account" | "subscription" | "user" | "portfolio", id)


class Marks(dict):
    """Instrument id → mark price, with each mark's time (epoch seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[int, float] = {}


class Topic:
    name: str = ""

    def __init__(self, user_id: int, name: str, message: Mapping) -> None:
        self.user_id = user_id
        self.name = name

    # --- database (a worker thread: reads only, changes nothing) ---
    def read(self, initial: bool) -> object:
        """What ``apply`` needs: the whole state (initial, or a state topic)
        or what is new since (an event topic)."""
        return None

    # --- the event loop (no database) ---
    def apply(self, data: object, initial: bool) -> dict[int, tuple[Decimal, float]]:
        """Take what ``read`` returned; return the marks (price, time) it read,
        for the hub to start from where it has none."""
        return {}

    def watch_keys(self) -> set[Key]:
        """The notices it reloads on."""
        return {("user", self.user_id)}

    def instruments(self) -> set[int]:
        """The ticks that change what it shows."""
        return set()

    def share_key(self) -> Hashable | None:
        """Sockets whose topics have the same key see the same thing: the hub
        keeps one topic for all of them (one read, one valuation per tick).
        None: not shared."""
        return None

    def snapshot(self, marks: Marks) -> dict:
        raise NotImplementedError

    def join_snapshot(self, marks: Marks) -> dict:
        """The snapshot for another socket joining a shared topic (changes
        nothing the next delta is computed from)."""
        raise NotImplementedError

    def delta(self, marks: Marks) -> dict | None:
        """What changed since the last snapshot or delta (None: nothing)."""
        raise NotImplementedError


class StateTopic(Topic):
    """Rows by key; a delta carries the rows that changed and the keys gone.
    Ticks in between coalesce: only the latest value of a row is sent."""

    def __init__(self, user_id: int, name: str, message: Mapping) -> None:
        super().__init__(user_id, name, message)
        self._sent: dict[str, dict] = {}

    def rows(self, marks: Marks) -> dict[str, dict]:
        raise NotImplementedError

    def extra(self, marks: Marks) -> dict:
        """Figures beside the rows (a total, a count)."""
        return {}

    def share_key(self) -> Hashable | None:
        return (self.name, self.user_id)

    def snapshot(self, marks: Marks) -> dict:
        self._sent = self.rows(marks)
        self._sent_extra = self.extra(marks)
        return {"rows": [{"key": k, **v} for k, v in self._sent.items()], **self._sent_extra}

    def join_snapshot(self, marks: Marks) -> dict:
        # What the feed's other sockets have: the next delta, computed against
        # it, then brings every socket of the feed to the same current state.
        return {"rows": [{"key": k, **v} for k, v in self._sent.items()], **self._sent_extra}

    def delta(self, marks: Marks) -> dict | None:
        rows = self.rows(marks)
        changed = [{"key": k, **v} for k, v in rows.items() if self._sent.get(k) != v]
        removed = [k for k in self._sent if k not in rows]
        extra = self.extra(marks)
        extra_changed = extra != self._sent_extra
        self._sent, self._sent_extra = rows, extra
        if not changed and not removed and not extra_changed:
            return None
        return {"changed": changed, "removed": removed, **extra}


class EventTopic(Topic):
    """New items as they happen; the snapshot is the latest few.

    Ids are handed out at insert, not at commit: a row with a lower id can
    commit after one with a higher (two chunks in two workers). So "new" is
    every row above the last id seen *or* created in the last
    ``LATE_COMMIT_SECONDS``, less the ids already sent. "Created" is the
    ``WRITTEN_AT`` field: it must be the time of writing (not, e.g., the
    time of the event a row records)."""

    SNAPSHOT_ITEMS = 20
    LATE_COMMIT_SECONDS = 30
    WRITTEN_AT = "created_at"
    SEEN_IDS = 2000

    def __init__(self, user_id: int, name: str, message: Mapping) -> None:
        super().__init__(user_id, name, message)
        self._last_id = 0
        self._items: list[dict] = []
        self._pending: list[dict] = []
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()

    def items_of(self, rows: QuerySet, fields: Sequence[str], initial: bool) -> list[dict]:
        """The items ``read`` returns, oldest first, from the topic's rows."""
        if initial:
            return list(reversed(rows.order_by("-pk").values(*fields)[: self.SNAPSHOT_ITEMS]))
        since = timezone.now() - timedelta(seconds=self.LATE_COMMIT_SECONDS)
        newer = rows.filter(Q(pk__gt=self._last_id) | Q(**{f"{self.WRITTEN_AT}__gte": since}))
        return list(newer.order_by("pk").values(*fields)[:500])

    def apply(self, data: object, initial: bool) -> dict:
        items = [item for item in data if item["id"] not in self._seen]
        for item in items:
            self._seen.add(item["id"])
            self._seen_order.append(item["id"])
            if len(self._seen_order) > self.SEEN_IDS:
                self._seen.discard(self._seen_order.popleft())
            self._last_id = max(self._last_id, item["id"])
        if initial:
            self._items = items
        else:
            self._pending.extend(items)
        return {}

    def snapshot(self, marks: Marks) -> dict:
        items, self._items, self._pending = self._items, [], []
        return {"items": items}

    def delta(self, marks: Marks) -> dict | None:
        if not self._pending:
            return None
        items, self._pending = self._pending, []
        return {"items": items}


# --- the registry --------------------------------------------------------------------

TopicFactory = Callable[[int, str, Mapping], Topic]
_factories: dict[str, TopicFactory] = {}


def register_topic(prefix: str, factory: TopicFactory) -> None:
    """``prefix`` is the topic's name, or what precedes ``:`` in it
    (``portfolio`` for ``portfolio:<id>``)."""
    _factories[prefix] = factory


def topic_names() -> list[str]:
    return sorted(_factories)


def topic_for(user_id: int, name: object, message: Mapping) -> Topic:
    if not isinstance(name, str) or not name:
        raise ProtocolError("UNKNOWN_TOPIC", "Name a topic.")
    factory = _factories.get(name.split(":", 1)[0])
    if factory is None:
        raise ProtocolError("UNKNOWN_TOPIC", f"No topic {name[:60]!r}; topics: {', '.join(topic_names())}.", name)
    return factory(user_id, name, message)


# --- the core's topics ---------------------------------------------------------------


class PricesTopic(StateTopic):
    """Marks of the instruments named in the subscribe message."""

    def __init__(self, user_id: int, name: str, message: Mapping) -> None:
        super().__init__(user_id, name, message)
        symbols = message.get("instruments")
        if (
            not isinstance(symbols, list)
            or not symbols
            or len(symbols) > MAX_INSTRUMENTS
            or not all(isinstance(s, str) and 0 < len(s) <= 40 for s in symbols)
        ):
            raise ProtocolError(
                "INVALID_INSTRUMENTS", f"Name 1 to {MAX_INSTRUMENTS} instruments by symbol in 'instruments'.", name
            )
        self._symbols = list(dict.fromkeys(symbols))
        self._ids: dict[int, str] = {}

    def read(self, initial: bool) -> object:
        found = selectors.instruments_by_symbol(self._symbols)
        missing = [s for s in self._symbols if s not in found]
        if missing:
            raise ProtocolError("UNKNOWN_INSTRUMENT", f"No instrument {missing[0]!r}.", self.name)
        return found, selectors.marks_at(found.values())

    def apply(self, data: object, initial: bool) -> dict:
        found, marks = data
        self._ids = {pk: symbol for symbol, pk in found.items()}
        return marks

    def watch_keys(self) -> set[Key]:
        return set()

    def share_key(self) -> Hashable | None:
        return ("prices", tuple(sorted(self._symbols)))  # the same for every user

    def instruments(self) -> set[int]:
        return set(self._ids)

    def rows(self, marks: Marks) -> dict[str, dict]:
        return {
            symbol: {"instrument": symbol, "mark_price": marks.get(pk), "at": marks.at.get(pk)}
            for pk, symbol in self._ids.items()
        }


class PositionsTopic(StateTopic):
    """The user's open positions and spot holdings, in every copy wallet and
    leader trading account, valued at the marks."""

    def __init__(self, user_id: int, name: str, message: Mapping) -> None:
        super().__init__(user_id, name, message)
        self._accounts: list[int] = []
        self._book = Book()

    def read(self, initial: bool) -> object:
        accounts = selectors.trading_accounts_of(self.user_id)
        book = selectors.book_load(accounts)
        return accounts, book, selectors.marks_at(book.instruments())

    def apply(self, data: object, initial: bool) -> dict:
        self._accounts, self._book, marks = data
        return marks

    def watch_keys(self) -> set[Key]:
        return {("user", self.user_id), *(("account", pk) for pk in self._accounts)}

    def instruments(self) -> set[int]:
        return self._book.instruments()

    def rows(self, marks: Marks) -> dict[str, dict]:
        return {**self._book.position_views(marks), **self._book.holding_views(marks)}


class NotificationsTopic(EventTopic):
    """The user's notifications as they arrive, with the unread count."""

    def __init__(self, user_id: int, name: str, message: Mapping) -> None:
        super().__init__(user_id, name, message)
        self._unread = 0
        self._unread_sent: int | None = None

    def read(self, initial: bool) -> object:
        from copytrading.notifications.models import Notification

        rows = Notification.objects.filter(user_id=self.user_id, hidden=False)
        fields = ["id", "kind", "severity", "title", "body", "data", "created_at", "read_at"]
        return self.items_of(rows, fields, initial), rows.filter(read_at__isnull=True).count()

    def apply(self, data: object, initial: bool) -> dict:
        items, self._unread = data
        return super().apply(items, initial)

    def snapshot(self, marks: Marks) -> dict:
        self._unread_sent = self._unread
        return {**super().snapshot(marks), "unread": self._unread}

    def delta(self, marks: Marks) -> dict | None:
        items = super().delta(marks)
        if items is None and self._unread == self._unread_sent:
            return None
        self._unread_sent = self._unread
        return {**(items or {"items": []}), "unread": self._unread}


register_topic("prices", PricesTopic)
register_topic("positions", PositionsTopic)
register_topic("notifications", NotificationsTopic)
