"""Topics alone: an event topic misses nothing that commits out of id order
and sends nothing twice; a joiner of a shared feed converges."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from copytrading import bulk
from copytrading.chunk_writer import EXECUTION_FIELDS
from copytrading.models import Execution, LeaderEvent, LeaderEventKind
from copytrading.notifications.models import Notification
from copytrading.stream.topics import Marks, NotificationsTopic, PricesTopic
from followers.stream import ExecutionsTopic
from tests.copytrading.world import World
from tests.factories import UserFactory

D = Decimal


@pytest.mark.django_db
def test_a_notification_committed_after_a_higher_id_is_still_sent_once():
    user = UserFactory()
    topic = NotificationsTopic(user.pk, "notifications", {})
    topic.apply(topic.read(True), True)
    topic.snapshot(Marks())

    def note(pk: int) -> None:
        Notification.objects.create(
            pk=pk, user=user, kind="withdrawal_done", severity="low", title="t", dedup_key=f"k{pk}",
            created_at=timezone.now(),
        )  # fmt: skip

    note(1002)  # committed first, though its id is the higher one
    topic.apply(topic.read(False), False)
    assert [i["id"] for i in topic.delta(Marks())["items"]] == [1002]
    note(1001)  # the lower id commits later
    topic.apply(topic.read(False), False)
    assert [i["id"] for i in topic.delta(Marks())["items"]] == [1001]
    topic.apply(topic.read(False), False)
    assert topic.delta(Marks()) is None  # nothing twice


@pytest.mark.django_db
def test_an_execution_of_a_long_past_event_committed_after_a_higher_id_is_still_sent(
    instruments, django_capture_on_commit_callbacks
):
    # A backlog: the chunks run minutes after their events, and an execution's
    # created_at is its event's time, outside the late-commit window; the
    # window reads when the row was written (recorded_at) instead.
    world = World(instruments, django_capture_on_commit_callbacks)
    sub = world.follower(world.leader())
    topic = ExecutionsTopic(sub.follower_id, "executions", {})
    topic.apply(topic.read(True), True)
    topic.snapshot(Marks())
    long_ago = timezone.now() - timedelta(seconds=4 * ExecutionsTopic.LATE_COMMIT_SECONDS)

    def execution(pk: int, seq: int) -> None:
        event = LeaderEvent.objects.create(
            portfolio_id=sub.portfolio_id, seq=seq, kind=LeaderEventKind.POSITION_OPEN, payload={}, status="done"
        )
        row = dict.fromkeys(EXECUTION_FIELDS)
        row.update(
            event=event.pk, subscription_id=sub.pk, portfolio_id=sub.portfolio_id, outcome="COPIED",
            reason_code="", created_at=long_ago, reason_detail="",
        )  # fmt: skip
        # The hot path's own insert (COPY on PostgreSQL), which names no recorded_at.
        bulk.insert_rows(Execution, ["id", *EXECUTION_FIELDS], [(pk, *row.values())])

    execution(900_002, 1)  # committed first, though its id is the higher one
    topic.apply(topic.read(False), False)
    assert [i["id"] for i in topic.delta(Marks())["items"]] == [900_002]
    execution(900_001, 2)  # the lower id commits later
    late = Execution.objects.get(pk=900_001)
    assert late.created_at == long_ago  # the event's time, long outside the window
    assert timezone.now() - late.recorded_at < timedelta(seconds=ExecutionsTopic.LATE_COMMIT_SECONDS)
    topic.apply(topic.read(False), False)
    [item] = topic.delta(Marks())["items"]
    assert (item["id"], item["created_at"]) == (900_001, long_ago)  # still the event's time, as the REST log
    topic.apply(topic.read(False), False)
    assert topic.delta(Marks()) is None  # nothing twice


@pytest.mark.django_db
def test_a_joiner_of_a_shared_feed_gets_what_the_others_have_then_the_change(instruments):
    eth = instruments["ETH/USDT:USDT"]
    topic = PricesTopic(1, "prices", {"instruments": [eth.symbol]})
    marks = Marks()
    for pk, (price, at) in topic.apply(topic.read(True), True).items():
        marks[pk], marks.at[pk] = price, at
    first = topic.snapshot(marks)
    marks[eth.pk] = D("3300")  # moved, not flushed yet
    joined = topic.join_snapshot(marks)
    assert joined == first  # what the feed's other sockets have
    marks[eth.pk] = first["rows"][0]["mark_price"]  # and back before the flush
    assert topic.delta(marks) is None  # everyone agrees: nothing to send, nobody left stale
    marks[eth.pk] = D("3400")
    assert topic.delta(marks)["changed"][0]["mark_price"] == D("3400")
