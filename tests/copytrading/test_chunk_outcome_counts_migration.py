"""The chunk outcome counters are filled for chunks done before they existed
(migration copytrading 0009 counts each chunk's execution rows once)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("copytrading", "0008_idempotent_request")]
AFTER = [("copytrading", "0009_chunk_outcome_counts")]


@pytest.mark.django_db(transaction=True)
def test_existing_chunks_get_the_counts_of_their_execution_rows():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Event = old.get_model("copytrading", "LeaderEvent")
    Chunk = old.get_model("copytrading", "PropagationChunk")
    Execution = old.get_model("copytrading", "Execution")
    event = Event.objects.create(portfolio_id=1, seq=1, kind="position_open", payload={}, status="done")
    other = Event.objects.create(portfolio_id=1, seq=2, kind="position_close", payload={}, status="done")
    low = Chunk.objects.create(event=event, index=0, first_subscription_id=1, last_subscription_id=10, status="done")
    high = Chunk.objects.create(event=event, index=1, first_subscription_id=11, last_subscription_id=20, status="done")
    empty = Chunk.objects.create(event=other, index=0, first_subscription_id=1, last_subscription_id=20)
    rows = [(1, "COPIED"), (2, "COPIED"), (3, "SKIPPED"), (11, "REJECTED"), (12, "FAILED"), (13, "COPIED")]
    Execution.objects.bulk_create(
        Execution(event=event, subscription_id=s, portfolio_id=1, outcome=o, reason_code="") for s, o in rows
    )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("copytrading", "PropagationChunk")
    counts = {c.pk: (c.copied, c.skipped, c.rejected, c.failed) for c in new.objects.all()}
    assert counts == {low.pk: (2, 1, 0, 0), high.pk: (1, 0, 1, 1), empty.pk: (0, 0, 0, 0)}
    # Leave the schema as the rest of the suite expects it.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
