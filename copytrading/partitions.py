"""Monthly partitions of the execution log and the ledger's transfers (PostgreSQL).

Both tables grow by followers x events (10,000 followers x 200 events a day is
2 million execution rows a day). On PostgreSQL they are declaratively
partitioned by RANGE on ``created_at``, one partition per calendar month (UTC),
named ``<table>_yYYYYmMM``, plus a ``<table>_default`` partition that catches
a row outside every month (it should stay empty: ``manage.py partitions
status`` exits 1 and the hourly task records a job error, counted by /healthz,
when it is not). Migration copytrading 0025 converts the tables; ``ensure``
creates the months ahead (beat, hourly; ``manage.py partitions ensure``);
``archive`` exports an old month of executions to a gzipped CSV file, then
detaches and drops it. Transfers are never archived:
balances are sums of transfers (``check_ledger``), so dropping a month of them
would unbalance the ledger (docs/decisions.md, "Monthly partitions").

SQLite (embedded mode) has no partitions: every function here is a no-op there.
"""

import gzip
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

log = logging.getLogger(__name__)

EXECUTIONS = "copytrading_execution"
TRANSFERS = "copytrading_transfer"
# Command-line names -> tables. Only executions can be archived.
TABLES = {"executions": EXECUTIONS, "transfers": TRANSFERS}
ARCHIVABLE = frozenset({EXECUTIONS})
# The ledger's idempotency keys (models.TransferKey), written by a trigger.
TRANSFER_KEYS = "copytrading_transferkey"
KEY_TRIGGER = "transfer_claims_its_key"
KEY_FUNCTION = "copytrading_transfer_claims_its_key"

_MONTH = re.compile(r"_y(\d{4})m(\d{2})$")


def supported() -> bool:
    return connection.vendor == "postgresql"


def month_of(moment: datetime | date) -> date:
    """The first day of the (UTC) month of ``moment``."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def parse_month(text: str) -> date:
    """``YYYY-MM`` -> the first day of that month; ValueError otherwise."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"{text!r} is not a month (YYYY-MM)")
    return date(int(match[1]), int(match[2]), 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_y{month.year:04d}m{month.month:02d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def _bound(month: date) -> str:
    return f"{month.isoformat()} 00:00:00+00"


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


def create_partition_sql(table: str, month: date) -> str:
    return (
        f"CREATE TABLE {_qn(partition_name(table, month))} PARTITION OF {_qn(table)} "
        f"FOR VALUES FROM ('{_bound(month)}') TO ('{_bound(add_months(month, 1))}')"
    )


def create_default_sql(table: str) -> str:
    return f"CREATE TABLE {_qn(default_name(table))} PARTITION OF {_qn(table)} DEFAULT"


def _months_named(table: str, names: list[str]) -> list[date]:
    """The months of the tables named ``<table>_yYYYYmMM`` among ``names``, oldest first."""
    found = []
    for name in names:
        match = _MONTH.search(name)
        if match and name == partition_name(table, date(int(match[1]), int(match[2]), 1)):
            found.append(date(int(match[1]), int(match[2]), 1))
    return sorted(found)


def months(table: str) -> list[date]:
    """The months that have a partition, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [table],
        )
        return _months_named(table, [r[0] for r in cursor.fetchall()])


def replay_refusal(moment: datetime, *, now: datetime | None = None) -> str | None:
    """Why an event of ``moment`` may not be replayed, or None.

    A replay serves every follower of the event's chunks that has no execution
    row for it; once its month of executions is archived (or may be: older
    than the retention) none has one, so a replay would copy the trade again
    to every follower."""
    month = month_of(moment)
    kept_from = add_months(month_of(now or timezone.now()), -settings.EXECUTION_RETENTION_MONTHS)
    if month < kept_from:
        return f"its executions are older than the retention ({settings.EXECUTION_RETENTION_MONTHS} months)"
    if supported():
        attached = months(EXECUTIONS)
        if attached and month < attached[0]:
            return f"its month of executions ({month:%Y-%m}) is archived"
    return None


def default_rows(table: str) -> int:
    """Rows in the DEFAULT partition (0 when it has none, or there is none)."""
    if not supported():
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [default_name(table)])
        if cursor.fetchone()[0] is None:
            return 0
        cursor.execute(f"SELECT count(*) FROM {_qn(default_name(table))}")
        return cursor.fetchone()[0]


def _rows_of_month_in_default(cursor, table: str, month: date) -> int:
    cursor.execute(
        f"SELECT count(*) FROM {_qn(default_name(table))} WHERE created_at >= %s AND created_at < %s",
        [_bound(month), _bound(add_months(month, 1))],
    )
    return cursor.fetchone()[0]


def _create_month(cursor, table: str, month: date) -> int:
    """Create one month's partition; rows of that month already caught by the
    DEFAULT partition move into it (PostgreSQL refuses the new partition
    while DEFAULT holds rows of its range). Returns the rows moved. Rows move
    partition to partition directly, not through the parent: the transfers'
    key trigger must not fire again for them."""
    stray = _rows_of_month_in_default(cursor, table, month)
    if not stray:
        cursor.execute(create_partition_sql(table, month))
        return 0
    name, default = _qn(partition_name(table, month)), _qn(default_name(table))
    cursor.execute(f"ALTER TABLE {_qn(table)} DETACH PARTITION {default}")
    cursor.execute(create_partition_sql(table, month))
    where = "created_at >= %s AND created_at < %s"
    bounds = [_bound(month), _bound(add_months(month, 1))]
    cursor.execute(f"INSERT INTO {name} SELECT * FROM {default} WHERE {where}", bounds)
    cursor.execute(f"DELETE FROM {default} WHERE {where}", bounds)
    cursor.execute(f"ALTER TABLE {_qn(table)} ATTACH PARTITION {default} DEFAULT")
    return stray


@dataclass(frozen=True)
class Planned:
    table: str
    name: str
    moved_from_default: int = 0


def _has_default(cursor, table: str) -> bool:
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass AND c.relname = %s)",
        [table, default_name(table)],
    )
    return cursor.fetchone()[0]


def ensure(
    *, months_ahead: int, now: datetime | None = None, dry_run: bool = False, first: date | None = None
) -> list[Planned]:
    """Create the partitions missing from ``first`` (default: this month) to
    ``months_ahead`` months after this one, and a DEFAULT partition if there
    is none, for both tables. Idempotent. Nothing missing takes no lock; each
    table is its own short transaction (holding one table's lock only, so it
    cannot deadlock with a chunk writing both)."""
    if not supported():
        return []
    this_month = month_of(now or timezone.now())
    wanted = []
    month = first or this_month
    while month <= add_months(this_month, months_ahead):
        wanted.append(month)
        month = add_months(month, 1)
    planned: list[Planned] = []
    for table in (EXECUTIONS, TRANSFERS):
        with connection.cursor() as cursor:
            missing = [m for m in wanted if m not in set(months(table))]
            needs_default = not _has_default(cursor, table)
        if not missing and not needs_default:
            continue
        if dry_run:
            planned += [Planned(table, default_name(table))] if needs_default else []
            planned += [Planned(table, partition_name(table, m)) for m in missing]
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            # One ensure at a time (beat and a command may overlap): re-read
            # under the lock. Writers wait for the few CREATE TABLEs.
            cursor.execute(f"LOCK TABLE {_qn(table)} IN SHARE ROW EXCLUSIVE MODE")
            if not _has_default(cursor, table):
                cursor.execute(create_default_sql(table))
                planned.append(Planned(table, default_name(table)))
            have = set(months(table))
            for month in wanted:
                if month not in have:
                    planned.append(Planned(table, partition_name(table, month), _create_month(cursor, table, month)))
    return planned


@dataclass(frozen=True)
class Archived:
    name: str
    month: date
    rows: int
    path: Path | None  # None on a dry run


def _detached(table: str) -> list[date]:
    """Months of ``table`` detached by an archive that did not finish (a
    crash between the detach and the drop): standalone tables by our name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE %s "
            "AND NOT c.relispartition",
            [f"{table}\\_y%"],
        )
        return _months_named(table, [r[0] for r in cursor.fetchall()])


def archivable(table: str, before: date) -> list[tuple[date, bool]]:
    """``(month, still attached)`` of each month of ``table`` before ``before``
    with a partition, or left detached by an archive that did not finish."""
    attached = [(m, True) for m in months(table) if m < before]
    return sorted(attached + [(m, False) for m in _detached(table) if m < before])


def archive(
    *, table: str, before: date, directory: Path, dry_run: bool = False, progress: Callable[[str], None] = print
) -> list[Archived]:
    """Export each month of ``table`` before ``before`` to
    ``directory/<partition>.csv.gz`` (COPY, CSV with a header), then drop it.

    Per month: DETACH in its own short transaction (from then on no row can
    land in it: a late row of that month goes to the DEFAULT partition, which
    is watched); COPY the detached table to a temporary file, fsync, check the
    row count COPY reports against count(*), rename; only then DROP. A crash
    anywhere leaves the rows in the database (attached or detached; a rerun
    finishes a detached one), never only in a partial file. Refuses the
    transfers: balances are sums of them (check_ledger)."""
    if table not in ARCHIVABLE:
        raise ValueError(f"{table} cannot be archived: balances are sums of its rows (check_ledger)")
    if not supported():
        return []
    done: list[Archived] = []
    for month, attached in archivable(table, before):
        name = partition_name(table, month)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {_qn(name)}")
            rows = cursor.fetchone()[0]
        path = directory / f"{name}.csv.gz"
        if dry_run:
            progress(f"would archive {name}: {rows} rows to {path}")
            done.append(Archived(name, month, rows, None))
            continue
        if attached:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {_qn(table)} DETACH PARTITION {_qn(name)}")
        _export(name, rows, path)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {_qn(name)}")
        progress(f"archived {name}: {rows} rows to {path}")
        done.append(Archived(name, month, rows, path))
    return done


def _export(name: str, rows: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with connection.cursor() as cursor, gzip.open(partial, "wb") as out:
        with cursor.cursor.copy(f"COPY {_qn(name)} TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
            for block in copy:
                out.write(block)
        copied = cursor.cursor.rowcount
    if copied != rows:
        partial.unlink()
        raise RuntimeError(f"{name}: COPY exported {copied} of {rows} rows; nothing dropped")
    with open(partial, "rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, path)


class StrayRows(Exception):
    """Rows in a DEFAULT partition: a month without its partition, or a row
    stamped far outside every month (the job-error feed's entry)."""


def partitions_maintain(*, now: datetime | None = None) -> dict[str, int]:
    """The periodic task's work: create the months ahead, then report rows
    caught by a DEFAULT partition (to the log and the job-error feed, which
    /healthz counts). Returns the partitions created and the stray rows."""
    from django.conf import settings

    from copytrading.failures import HIGH, failure_report

    created = ensure(months_ahead=settings.PARTITION_MONTHS_AHEAD, now=now)
    stray = {table: default_rows(table) for table in (EXECUTIONS, TRANSFERS)}
    for table, rows in stray.items():
        if rows:
            log.error("%s rows in %s: a month without a partition?", rows, default_name(table))
            failure_report(
                task="copytrading.partitions.maintain",
                arguments={"partition": default_name(table)},
                exc=StrayRows(f"{rows} rows in {default_name(table)} (manage.py partitions ensure moves them)"),
                severity=HIGH,
            )
    return {"created": len(created), "default_rows": sum(stray.values())}


# The ledger's key trigger (models.TransferKey; installed by migration 0024,
# in the transaction that drops the unique column, so no moment is without a
# unique key). On PostgreSQL it is statement-level, so a COPY of a chunk's
# transfers claims all its keys in one INSERT ... SELECT (a per-row trigger
# would run a plpgsql call and an INSERT per row); the transition table holds
# every row of the statement, whichever partition it landed in.
PG_KEY_FUNCTION = f"""
CREATE FUNCTION {KEY_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TRANSFER_KEYS} (idempotency_key, transfer_id, created_at)
    SELECT idempotency_key, id, created_at FROM inserted;
    RETURN NULL;
END $$
"""
PG_KEY_TRIGGER = f"""
CREATE TRIGGER {KEY_TRIGGER} AFTER INSERT ON {TRANSFERS}
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION {KEY_FUNCTION}()
"""
PG_DROP_KEY_TRIGGER = f"DROP TRIGGER {KEY_TRIGGER} ON {TRANSFERS}"
PG_DROP_KEY_FUNCTION = f"DROP FUNCTION {KEY_FUNCTION}()"
SQLITE_KEY_TRIGGER = f"""
CREATE TRIGGER {KEY_TRIGGER} AFTER INSERT ON {TRANSFERS} BEGIN
    INSERT INTO {TRANSFER_KEYS} (idempotency_key, transfer_id, created_at)
    VALUES (NEW.idempotency_key, NEW.id, NEW.created_at);
END
"""
SQLITE_DROP_KEY_TRIGGER = f"DROP TRIGGER {KEY_TRIGGER}"
