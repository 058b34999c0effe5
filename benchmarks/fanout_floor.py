"""The floor of an open fan-out: only writing what it writes, with COPY.

A fan-out that opens a mirror for every follower writes, per follower, one
position, one filled order and one execution row, and moves the copy
wallet's locked margin (one account row updated). The floor writes exactly
those rows — read back from a fan-out that just ran, so the values are the
same — into scratch copies of the same tables, in one transaction:
three COPYs and one ``UPDATE … FROM unnest`` for the accounts, committed
like a chunk (``synchronous_commit`` as ``FANOUT_ASYNC_COMMIT`` says). Ids
are given by the client (no sequence round trip). No decision, no read,
no lock, no round trip per chunk: what remains is PostgreSQL's cost of the
rows themselves.

The scratch tables are ``CREATE TABLE … (LIKE … INCLUDING ALL)``: the same
columns, CHECK constraints and indexes (partial and unique ones included).
``LIKE`` copies no foreign keys, which a fan-out pays at commit (Django
makes them ``DEFERRABLE INITIALLY DEFERRED``: about nine checks per
follower); ``with_foreign_keys`` adds the real tables' foreign keys to the
scratch ones (pointing at the scratch copy where another copied table is
referenced), so the constraints cost the same as well.
"""

import time

from django.db import connection

# The tables an open fan-out writes per follower, in write order.
TABLES = ("copytrading_position", "copytrading_order", "copytrading_execution")
ACCOUNTS = "copytrading_account"
SCRATCH = "floor_"  # the scratch tables without foreign keys
SCRATCH_FK = "floorfk_"  # and with them


def _columns(cursor, table: str) -> list[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        [table],
    )
    return [r[0] for r in cursor.fetchall()]


def scratch_create(*, with_foreign_keys: bool) -> None:
    """(Re)create the scratch tables; with ``with_foreign_keys``, with the
    real tables' foreign keys too (under their own prefix)."""
    prefix = SCRATCH_FK if with_foreign_keys else SCRATCH
    copied = {*TABLES, ACCOUNTS}
    with connection.cursor() as cursor:
        for table in (*TABLES, ACCOUNTS):
            cursor.execute(f"DROP TABLE IF EXISTS {prefix}{table} CASCADE")
            cursor.execute(f"CREATE TABLE {prefix}{table} (LIKE {table} INCLUDING ALL)")
        if not with_foreign_keys:
            return
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, confrelid::regclass::text, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])",
            [list(copied)],
        )
        for table, name, referenced, definition in cursor.fetchall():
            # A self-reference (a mirror's leader position, a mirror order's
            # leader order) points at a row the floor does not copy.
            if referenced in copied and referenced != table:
                definition = definition.replace(f"REFERENCES {referenced}(", f"REFERENCES {prefix}{referenced}(")
            cursor.execute(f'ALTER TABLE {prefix}{table} ADD CONSTRAINT "{prefix}{name}" {definition}')


def event_rows(event_id: int) -> dict[str, object]:
    """What the open fan-out of ``event_id`` wrote per follower: its
    positions, orders and execution rows (with new ids, given here), and
    each copy wallet's locked margin."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM copytrading_order")
        order_base = cursor.fetchone()[0] + 1_000_000
        cursor.execute("SELECT max(id) FROM copytrading_position")
        position_base = cursor.fetchone()[0] + 1_000_000
        position_cols = _columns(cursor, "copytrading_position")
        order_cols = _columns(cursor, "copytrading_order")
        execution_cols = _columns(cursor, "copytrading_execution")
        cursor.execute(
            f"SELECT {', '.join('p.' + c for c in position_cols)} FROM copytrading_position p "
            "JOIN copytrading_order o ON o.position_id = p.id WHERE o.leader_event_id = %s ORDER BY p.id",
            [event_id],
        )
        positions = [list(r) for r in cursor.fetchall()]
        cursor.execute(
            f"SELECT {', '.join(order_cols)} FROM copytrading_order WHERE leader_event_id = %s ORDER BY id",
            [event_id],
        )
        orders = [list(r) for r in cursor.fetchall()]
        cursor.execute(
            f"SELECT {', '.join(execution_cols)} FROM copytrading_execution WHERE event_id = %s ORDER BY id",
            [event_id],
        )
        executions = [list(r) for r in cursor.fetchall()]
    # New ids, the references between the rows kept.
    position_id = {}
    for n, row in enumerate(positions):
        position_id[row[0]] = row[0] = position_base + n
    order_id = {}
    pos_col = order_cols.index("position_id")
    for n, row in enumerate(orders):
        order_id[row[0]] = row[0] = order_base + n
        row[pos_col] = position_id.get(row[pos_col], row[pos_col])
    ord_col = execution_cols.index("order_id")
    for row in executions:
        row[ord_col] = order_id.get(row[ord_col], row[ord_col])
    acc_col, margin_col = position_cols.index("account_id"), position_cols.index("margin")
    accounts = sorted((row[acc_col], row[margin_col]) for row in positions)
    return {
        "copytrading_position": (position_cols, [tuple(r) for r in positions]),
        "copytrading_order": (order_cols, [tuple(r) for r in orders]),
        # Executions keep their ids: the scratch table is emptied between rounds.
        "copytrading_execution": (execution_cols, [tuple(r) for r in executions]),
        ACCOUNTS: accounts,
    }


def floor_round(rows: dict[str, object], *, async_commit: bool, with_foreign_keys: bool) -> float:
    """Write ``rows`` into the emptied scratch tables in one transaction;
    milliseconds from BEGIN to the commit's return."""
    prefix = SCRATCH_FK if with_foreign_keys else SCRATCH
    with connection.cursor() as cursor:
        for table in (*TABLES, ACCOUNTS):
            cursor.execute(f"TRUNCATE {prefix}{table} CASCADE")
        cursor.execute(f"INSERT INTO {prefix}{ACCOUNTS} SELECT * FROM {ACCOUNTS}")
    connection.ensure_connection()
    conn = connection.connection  # the psycopg connection, outside Django's bookkeeping
    account_ids = [a for a, _ in rows[ACCOUNTS]]
    margins = [m for _, m in rows[ACCOUNTS]]
    started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cursor:
        if async_commit:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        for table in TABLES:
            columns, values = rows[table]
            with cursor.copy(f"COPY {prefix}{table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        cursor.execute(
            f"UPDATE {prefix}{ACCOUNTS} AS t SET locked = t.locked + v.m "
            "FROM unnest(%s::bigint[], %s::numeric[]) AS v(id, m) WHERE t.id = v.id",
            [account_ids, margins],
        )
    return (time.perf_counter() - started) * 1000
