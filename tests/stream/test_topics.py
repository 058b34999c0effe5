"""Topics alone: an event topic misses nothing that commits out of id order
and sends nothing twice; a joiner of a shared feed converges."""

from decimal import Decimal

import pytest
from django.utils import timezone

from copytrading.notifications.models import Notification
from copytrading.stream.topics import Marks, NotificationsTopic, PricesTopic
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
