"""copytrading.changes: what a transaction touched is told once, after its
commit, and never for a rollback."""

import pytest
from django.db import transaction

from copytrading import changes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def told(monkeypatch):
    calls: list[changes.Changes] = []
    monkeypatch.setattr(changes, "_listeners", [calls.append])
    return calls


def test_one_call_per_transaction_with_the_union(told):
    with transaction.atomic():
        changes.touch(accounts=[1, 2])
        changes.touch(accounts=[2, 3], users=[7])
        with transaction.atomic():
            changes.touch(subscriptions=[5], marks={9: (1, 2.0)})
        assert told == []  # nothing before the commit
    assert len(told) == 1
    assert (told[0].accounts, told[0].users, told[0].subscriptions, told[0].marks) == (
        {1, 2, 3},
        {7},
        {5},
        {9: (1, 2.0)},
    )


def test_a_rollback_tells_nothing(told):
    with pytest.raises(RuntimeError), transaction.atomic():
        changes.touch(accounts=[1])
        raise RuntimeError
    assert told == []


def test_a_rolled_back_savepoint_keeps_the_rest(told):
    with transaction.atomic():
        try:
            with transaction.atomic():
                changes.touch(accounts=[1])
                raise RuntimeError
        except RuntimeError:
            pass
        changes.touch(accounts=[2])
    # The savepoint's callback went with it; what followed is still told (an
    # id from the rolled-back part may be in the union: a needless reload).
    assert len(told) == 1 and 2 in told[0].accounts


def test_outside_a_transaction_it_is_told_at_once(told):
    changes.touch(users=[4])
    assert [c.users for c in told] == [{4}]


def test_a_listener_that_raises_does_not_stop_the_others(monkeypatch):
    seen = []

    def broken(_):
        raise ValueError("boom")

    monkeypatch.setattr(changes, "_listeners", [broken, seen.append])
    with transaction.atomic():
        changes.touch(accounts=[1])
    assert len(seen) == 1
