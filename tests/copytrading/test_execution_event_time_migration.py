"""Execution rows written before their time became their event's (migration
copytrading 0024) take their event's time, so a retry or a replay finds them
(docs/decisions.md §86) and the unique key refuses a second row."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("copytrading", "0023_transfer_fee_by_time")]
AFTER = [("copytrading", "0024_transfer_key_and_execution_event_time")]


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_take_their_events_time():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Event = old.get_model("copytrading", "LeaderEvent")
    Execution = old.get_model("copytrading", "Execution")
    event = Event.objects.create(portfolio_id=1, seq=1, kind="position_open", payload={}, status="done")
    row = Execution.objects.create(event=event, subscription_id=7, portfolio_id=1, outcome="COPIED", reason_code="")
    # Written a while after its event, as a backlog or a retry would.
    Execution.objects.filter(pk=row.pk).update(created_at=event.created_at + timedelta(minutes=3))

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("copytrading", "Execution")
    migrated = new.objects.get(pk=row.pk)
    assert migrated.created_at == event.created_at
    # A retry's row for the same event and follower is refused, as before.
    with pytest.raises(IntegrityError), transaction.atomic():
        new.objects.create(
            event_id=event.pk,
            subscription_id=7,
            portfolio_id=1,
            outcome="COPIED",
            reason_code="",
            created_at=event.created_at,
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
