"""The follower's topics on the live stream (registered in apps.py):
``copies`` — each of the user's copies at the live marks, the same figures as
the subscriptions API (followers.snapshot) — and ``executions`` — the copy
results of the user's subscriptions as they happen."""

from collections.abc import Mapping
from dataclasses import fields

from copytrading import reasons
from copytrading.models import Execution
from copytrading.stream.selectors import book_load, marks_at
from copytrading.stream.topics import EventTopic, Key, Marks, StateTopic, register_topic
from followers.models import Subscription, SubscriptionStatus
from followers.selectors import copy_inputs
from followers.snapshot import CopySnapshot, copy_snapshot

SNAPSHOT_FIELDS = tuple(f.name for f in fields(CopySnapshot))


class CopiesTopic(StateTopic):
    def __init__(self, user_id: int, name: str, message: Mapping) -> None:
        super().__init__(user_id, name, message)
        self._subscriptions: list[tuple[int, int, int, str]] = []  # (id, copy account, portfolio, its name)
        self._inputs: dict = {}
        self._book = None

    def read(self, initial: bool) -> object:
        subscriptions = list(
            Subscription.objects.filter(follower_id=self.user_id)
            .exclude(status=SubscriptionStatus.ENDED)
            .select_related("portfolio")
            .order_by("pk")
        )
        book = book_load([s.copy_account_id for s in subscriptions])
        meta = [(s.pk, s.copy_account_id, s.portfolio_id, s.portfolio.name) for s in subscriptions]
        return meta, copy_inputs(subscriptions), book, marks_at(book.instruments())

    def apply(self, data: object, initial: bool) -> dict:
        self._subscriptions, self._inputs, self._book, marks = data
        return marks

    def watch_keys(self) -> set[Key]:
        keys: set[Key] = {("user", self.user_id)}
        for pk, account, _, _ in self._subscriptions:
            keys.add(("subscription", pk))
            keys.add(("account", account))
        return keys

    def instruments(self) -> set[int]:
        return self._book.instruments() if self._book is not None else set()

    def rows(self, marks: Marks) -> dict[str, dict]:
        if self._book is None:
            return {}
        figures = self._book.figures([account for _, account, _, _ in self._subscriptions], marks)
        rows = {}
        for pk, account, portfolio_id, portfolio_name in self._subscriptions:
            inputs = self._inputs.get(pk)
            if inputs is None:
                continue
            f = figures[account]
            snapshot = copy_snapshot(
                inputs.at_marks(
                    margin_unrealized=f.margin_unrealized,
                    holdings_value=f.holdings_value,
                    spot_unrealized=f.spot_unrealized,
                )
            )
            row = {"portfolio_id": portfolio_id, "portfolio_name": portfolio_name}
            for name in SNAPSHOT_FIELDS:  # not dataclasses.asdict: it deep-copies every figure
                row[name] = getattr(snapshot, name)
            rows[str(pk)] = row
        return rows


class ExecutionsTopic(EventTopic):
    # created_at is the leader event's time, which a chunk that runs late is
    # long past (docs/decisions.md §86).
    WRITTEN_AT = "recorded_at"
    FIELDS = (
        "id",
        "event_id",
        "portfolio_id",
        "subscription_id",
        "outcome",
        "reason_code",
        "leader_quantity",
        "leader_price",
        "follower_quantity",
        "follower_price",
        "order_id",
        "created_at",
        # What the decision saw and the note beside the code, as the REST log.
        "reason_detail",
        "attempted_quantity",
        "free_balance",
        "min_quantity",
        "min_notional",
        "quantity_step",
        "price_used",
    )
    # Read for the reason's sentence (its units), not sent.
    SENTENCE_INPUTS = {"event__kind": "event_kind", "event__payload__symbol": "symbol"}

    def __init__(self, user_id: int, name: str, message: Mapping) -> None:
        super().__init__(user_id, name, message)
        self._subscription_ids: list[int] = []

    def read(self, initial: bool) -> object:
        ids = list(Subscription.objects.filter(follower_id=self.user_id).order_by("pk").values_list("pk", flat=True))
        rows = Execution.objects.filter(subscription_id__in=ids)
        items = self.items_of(rows, (*self.FIELDS, *self.SENTENCE_INPUTS), initial)
        for item in items:
            values = {**item, **{name: item.pop(key) for key, name in self.SENTENCE_INPUTS.items()}}
            item["reason_text"] = reasons.reason_text(item["reason_code"], values)
        return ids, items

    def apply(self, data: object, initial: bool) -> dict:
        self._subscription_ids, items = data
        return super().apply(items, initial)

    def watch_keys(self) -> set[Key]:
        return {("user", self.user_id), *(("subscription", pk) for pk in self._subscription_ids)}


def register() -> None:
    register_topic("copies", CopiesTopic)
    register_topic("executions", ExecutionsTopic)
