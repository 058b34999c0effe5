"""Monthly partitions of the execution log and transfers (copytrading/partitions.py,
migration copytrading 0025): rows land in their month, the idempotency of the
fan-out and of the ledger holds across a month boundary, and the ``partitions``
command creates ahead and archives (export, then drop) as it says."""

import gzip
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest
import time_machine
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import override_settings

from copytrading import bulk, ledger, partitions, propagation
from copytrading.chunk_writer import EXECUTION_FIELDS
from copytrading.ledger import ledger_check
from copytrading.models import (
    AccountKind,
    ChunkStatus,
    Execution,
    LeaderEvent,
    LeaderEventKind,
    PropagationChunk,
    Transfer,
    TransferKey,
    TransferKind,
)
from tests.copytrading.world import ETH_PERP, World
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

D = Decimal
JAN_31_LATE = datetime(2027, 1, 31, 23, 59, 59, 900_000, tzinfo=UTC)
FEB_1 = datetime(2027, 2, 1, 0, 0, 1, tzinfo=UTC)
postgres_only = pytest.mark.postgres
# The hot path's COPY raises psycopg's own error (bulk.insert_rows uses the raw cursor).
DUPLICATE = (IntegrityError, psycopg.errors.IntegrityError) if connection.vendor == "postgresql" else IntegrityError


def at(moment: datetime):
    return time_machine.travel(moment, tick=False)


@pytest.fixture
def months(db):
    """Partitions for January to March 2027, whenever the suite runs."""
    partitions.ensure(months_ahead=1, now=FEB_1, first=date(2027, 1, 1))


def partition_of(model, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def partition_names(table: str) -> set[str]:
    return {partitions.partition_name(table, m) for m in partitions.months(table)}


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 2
    return World(instruments, django_capture_on_commit_callbacks)


@postgres_only
def test_an_event_of_january_copied_in_february_lands_in_january_and_a_replay_adds_nothing(
    world, months, django_capture_on_commit_callbacks
):
    with at(JAN_31_LATE):
        portfolio = world.leader()
        subs = [world.follower(portfolio) for _ in range(3)]
    with at(JAN_31_LATE), django_capture_on_commit_callbacks(execute=False) as dispatches:
        (event,) = portfolio_order(portfolio)
    # The worker picks the event up after midnight: the rows carry the event's time.
    with at(FEB_1):
        for dispatch in dispatches:
            dispatch()
        rows = list(Execution.objects.filter(event=event).values_list("pk", "created_at", "outcome"))
        assert sorted(o for _, _, o in rows) == ["COPIED"] * len(subs)
        assert {c for _, c, _ in rows} == {JAN_31_LATE}
        assert {partition_of(Execution, pk) for pk, _, _ in rows} == {"copytrading_execution_y2027m01"}

        # A chunk whose checkpoint was lost, run again on February 1st.
        PropagationChunk.objects.filter(event=event).update(status=ChunkStatus.PENDING)
        for chunk in PropagationChunk.objects.filter(event=event):
            result = propagation.chunk_propagate(chunk.pk)
            assert (result.copied, result.skipped, result.rejected, result.failed) == (0, 0, 0, 0)
        # The last line of defence, without the engine's probe: the unique
        # index (which includes the partition key) refuses the same row again.
        row = (event.pk, subs[0].pk, event.portfolio_id, "COPIED", "", None, None, None, None, None, None)
        with pytest.raises(DUPLICATE), transaction.atomic():
            bulk.insert_rows(Execution, EXECUTION_FIELDS[:12], [(*row, event.created_at)])
    assert Execution.objects.filter(event=event).count() == len(subs)
    assert ledger_check().ok


def portfolio_order(portfolio):
    from portfolios.services import portfolio_order_place

    return portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10)


def test_a_transfer_key_used_in_january_is_refused_in_february(months):
    source = ledger.main_account_for(UserFactory())
    external = ledger.system_account(AccountKind.EXTERNAL)
    with at(JAN_31_LATE):
        first, created = ledger.transfer(
            debit_id=external.pk, credit_id=source.pk, amount=D("100"), kind=TransferKind.DEPOSIT, key="dep:1"
        )
        assert created
    with at(FEB_1):
        again, created = ledger.transfer(
            debit_id=external.pk, credit_id=source.pk, amount=D("100"), kind=TransferKind.DEPOSIT, key="dep:1"
        )
        assert (again.pk, created) == (first.pk, False)
        # Every writer, not only ledger.transfer: the raw insert and the hot path's COPY.
        with pytest.raises(IntegrityError), transaction.atomic():
            Transfer.objects.create(
                debit_id=external.pk,
                credit_id=source.pk,
                amount=D("1"),
                kind=TransferKind.DEPOSIT,
                idempotency_key="dep:1",
            )
        with pytest.raises(DUPLICATE), transaction.atomic():
            ledger.apply_transfers([ledger.TransferSpec(external.pk, source.pk, D("1"), TransferKind.DEPOSIT, "dep:1")])
        ledger.apply_transfers([ledger.TransferSpec(external.pk, source.pk, D("5"), TransferKind.DEPOSIT, "dep:2")])
    assert Transfer.objects.filter(idempotency_key="dep:1").count() == 1
    keys = dict(TransferKey.objects.values_list("idempotency_key", "transfer_id"))
    assert keys == dict(Transfer.objects.values_list("idempotency_key", "pk"))
    assert ledger.main_account_for(source.user).balance == D("105")
    if partitions.supported():
        assert partition_of(Transfer, first.pk) == "copytrading_transfer_y2027m01"
        assert partition_of(Transfer, Transfer.objects.get(idempotency_key="dep:2").pk) == (
            "copytrading_transfer_y2027m02"
        )
    call_command("check_ledger")  # raises CommandError when the ledger does not balance


def _event_at(moment: datetime, seq: int) -> LeaderEvent:
    event = LeaderEvent.objects.create(
        portfolio_id=1, seq=seq, kind=LeaderEventKind.POSITION_OPEN, payload={}, status="done"
    )
    LeaderEvent.objects.filter(pk=event.pk).update(created_at=moment)
    event.refresh_from_db()
    return event


def _executions(event: LeaderEvent, n: int) -> None:
    Execution.objects.bulk_create(
        Execution(
            event=event,
            subscription_id=100 + i,
            portfolio_id=1,
            outcome="COPIED",
            reason_code="",
            reason_detail='one, "quoted"\nand two lines' if i == 0 else "",
            created_at=event.created_at,
        )
        for i in range(n)
    )


@postgres_only
def test_ensure_dry_run_changes_nothing_and_ensure_moves_stray_rows_out_of_default():
    far = datetime(2031, 6, 15, tzinfo=UTC)
    _executions(_event_at(far, 1), 3)
    assert partitions.default_rows(partitions.EXECUTIONS) == 3
    before = partition_names(partitions.EXECUTIONS)

    call_command("partitions", "ensure", "--dry-run", "--months-ahead", "70")
    assert partition_names(partitions.EXECUTIONS) == before
    assert partitions.default_rows(partitions.EXECUTIONS) == 3
    with pytest.raises(SystemExit) as status:
        call_command("partitions", "status")
    assert status.value.code == 1  # rows in DEFAULT

    planned = partitions.ensure(months_ahead=0, now=far, first=date(2031, 6, 1))
    assert [(p.name, p.moved_from_default) for p in planned if p.table == partitions.EXECUTIONS] == [
        ("copytrading_execution_y2031m06", 3)
    ]
    assert partitions.default_rows(partitions.EXECUTIONS) == 0
    assert {partition_of(Execution, pk) for pk in Execution.objects.values_list("pk", flat=True)} == {
        "copytrading_execution_y2031m06"
    }
    assert partitions.ensure(months_ahead=0, now=far, first=date(2031, 6, 1)) == []  # idempotent
    call_command("partitions", "status")  # this month and the next exist, DEFAULT empty: exit 0


@postgres_only
def test_archive_exports_then_drops_old_months_and_dry_run_changes_nothing(tmp_path):
    partitions.ensure(months_ahead=0, now=datetime(2020, 4, 1, tzinfo=UTC), first=date(2020, 3, 1))
    old = _event_at(datetime(2020, 3, 10, 12, tzinfo=UTC), 1)
    kept = _event_at(datetime(2020, 4, 2, tzinfo=UTC), 2)
    _executions(old, 4)
    _executions(kept, 2)
    # The test's transaction has the rows' deferred foreign-key checks pending,
    # which DETACH refuses; the command runs in transactions of its own.
    connection.cursor().execute("SET CONSTRAINTS ALL IMMEDIATE")

    call_command("partitions", "archive", "--before", "2020-04", "--dir", str(tmp_path), "--dry-run")
    assert Execution.objects.filter(event=old).count() == 4
    assert not list(tmp_path.iterdir())

    call_command("partitions", "archive", "--before", "2020-04", "--dir", str(tmp_path))
    path = tmp_path / "copytrading_execution_y2020m03.csv.gz"
    with gzip.open(path, "rt", newline="") as f:
        import csv

        lines = list(csv.reader(f))
    assert lines[0][:2] == ["id", "subscription_id"]
    assert len(lines) == 1 + 4
    assert 'one, "quoted"\nand two lines' in [v for line in lines for v in line]
    assert not Execution.objects.filter(event=old).exists()
    assert Execution.objects.filter(event=kept).count() == 2
    assert "copytrading_execution_y2020m03" not in partition_names(partitions.EXECUTIONS)
    assert "copytrading_execution_y2020m04" in partition_names(partitions.EXECUTIONS)
    assert not list(tmp_path.glob("*.partial"))


@postgres_only
@override_settings(EXECUTION_RETENTION_MONTHS=12)
def test_archive_refuses_transfers_and_months_inside_the_retention(tmp_path, capsys):
    for args in (["--table", "transfers", "--before", "2020-01"], ["--before", "2999-01"], ["--before", "20-1"]):
        with pytest.raises(SystemExit) as status:
            call_command("partitions", "archive", "--dir", str(tmp_path), *args)
        assert status.value.code == 1
    err = capsys.readouterr().err
    assert "refused: transfers are the ledger" in err
    assert "inside the retention" in err
    with pytest.raises(ValueError):
        partitions.archive(table=partitions.TRANSFERS, before=date(2020, 1, 1), directory=tmp_path)


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the SQLite answer")
def test_the_command_cannot_run_on_sqlite():
    with pytest.raises(SystemExit) as status:
        call_command("partitions", "status")
    assert status.value.code == 2


@postgres_only
def test_the_maintain_task_reports_rows_in_a_default_partition(monkeypatch):
    from copytrading import failures, tasks

    reported = []
    monkeypatch.setattr(failures, "_reporters", [lambda **kw: reported.append(kw)])
    assert tasks.maintain_partitions()["default_rows"] == 0
    assert reported == []
    _executions(_event_at(datetime(2035, 1, 1, tzinfo=UTC), 1), 2)
    assert tasks.maintain_partitions()["default_rows"] == 2
    (report,) = reported
    assert report["arguments"] == {"partition": "copytrading_execution_default"}
    assert isinstance(report["exc"], partitions.StrayRows)


def test_the_maintain_task_is_scheduled_once_by_beat():
    from config.celery import app

    entries = [e for e in app.conf.beat_schedule.values() if e["task"] == "copytrading.tasks.maintain_partitions"]
    assert len(entries) == 1
    # Hourly: a missed run is made up long before the months ahead run out.
    assert entries[0]["schedule"] <= 3600
