"""What one leader event leaves in PostgreSQL per follower (docs/scaling.md):
rows, table bytes (heap + indexes + TOAST) and WAL, for an open and a close of a
margin position copied by N followers (BENCH_FOOTPRINT_FOLLOWERS, default 10,000),
the close 1 % up (each copy books a realized profit).

The events run through the engine in this process (the worker adds no rows); each
kind runs BENCH_FOOTPRINT_ROUNDS times (default 3). Rows and bytes are the median
over rounds of the growth of every table; WAL is the growth of the server's WAL
records of this database between the two positions (pg_walinspect: records whose
blocks are in this database, full-page images included), so other databases on the
same server do not count; without the extension, the growth of the server's WAL
position, smallest round (other work can only add to it). CPU: this process's (the engine: decisions,
serialization, driver) and its PostgreSQL backend's (/proc, when the server is on this
machine), per follower, the chunks run one after another in one process. Prints:
    footprint event=open followers=N rows_per_follower=… bytes_per_follower=… wal_bytes_per_follower=…
    footprint_tables event=open <table>=<rows per follower>:<bytes per follower> …
    footprint_cpu_per_follower event=open followers=N wall_us=… app_cpu_us=… db_cpu_us=…
"""

import os
import statistics
import sys
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from benchmarks.setup import prepare_database

FOLLOWERS = int(os.environ.get("BENCH_FOOTPRINT_FOLLOWERS", "10000"))
ROUNDS = int(os.environ.get("BENCH_FOOTPRINT_ROUNDS", "3"))

SIZES = """
    SELECT c.relname, c.reltuples, pg_total_relation_size(c.oid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname = 'public'
"""


def snapshot() -> tuple[dict[str, tuple[int, int]], int]:
    """Per table (exact rows, total bytes), and the server's WAL position."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(SIZES)
        tables = {name: size for name, _, size in cursor.fetchall()}
        counts = {}
        for name in tables:
            cursor.execute(f'SELECT count(*) FROM "{name}"')
            counts[name] = cursor.fetchone()[0]
        cursor.execute("SELECT pg_current_wal_lsn()")
        wal = cursor.fetchone()[0]
    return {name: (counts[name], tables[name]) for name in tables}, wal


def wal_bytes(start: str, end: str) -> int:
    """WAL written for this database between two positions (see the module's docstring)."""
    from django.db import DatabaseError, connection, transaction

    with connection.cursor() as cursor:
        try:
            with transaction.atomic():
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        except DatabaseError:
            cursor.execute("SELECT %s::pg_lsn - %s::pg_lsn", [end, start])
            return int(cursor.fetchone()[0])
        # pg_walinspect reads only what is flushed (chunks commit asynchronously).
        for _ in range(100):
            cursor.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", [end])
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
        cursor.execute(
            "SELECT coalesce(sum(record_length), 0) FROM pg_get_wal_records_info(%s, %s) "
            "WHERE block_ref ~ ('rel [0-9]+/' || %s || '/')",
            [start, end, str(_database_oid())],
        )
        return int(cursor.fetchone()[0])


def backend_cpu_seconds() -> float | None:
    """CPU time of this connection's PostgreSQL backend (same machine: /proc), or None."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None  # the server is on another host
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextmanager
def wal_kept():
    """Keep the server's WAL from here until read (a temporary replication slot): on a
    busy server the segments of a round could be recycled before they are inspected."""
    from django.db import DatabaseError, connection

    name = f"footprint_{os.getpid()}"
    with connection.cursor() as cursor:
        try:
            cursor.execute("SELECT pg_create_physical_replication_slot(%s, true, true)", [name])
        except DatabaseError:
            name = ""  # no permission: measured without it
    try:
        yield
    finally:
        if name:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_drop_replication_slot(%s)", [name])


def _database_oid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def run_event(event_id: int) -> tuple[float, float, float | None]:
    """Run the event's chunks here; (wall, this process's CPU, the backend's CPU) in seconds."""
    from copytrading import propagation

    db_before, cpu_before, wall_before = backend_cpu_seconds(), time.process_time(), time.perf_counter()
    for chunk_id in propagation.event_start(event_id):
        propagation.chunk_propagate(chunk_id)
    assert propagation.event_complete(event_id)
    wall, cpu, db_after = time.perf_counter() - wall_before, time.process_time() - cpu_before, backend_cpu_seconds()
    return wall, cpu, (db_after - db_before) if db_before is not None and db_after is not None else None


def main() -> int:
    prepare_database()
    from unittest import mock

    from django.db import connection

    from backoffice.loadgen import followers_seed_bulk
    from copytrading import events, services
    from copytrading.models import Execution, Instrument
    from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place

    services.instruments_seed()
    btc = Instrument.objects.get(symbol="BTC/USDT:USDT")
    leader = services.user_register(username="bench-leader", password="bench-pass-123")
    services.wallet_deposit(user=leader, amount=Decimal("1000000"))
    portfolio = portfolio_create(leader=leader, name="footprint")
    portfolio_fund(portfolio=portfolio, amount=Decimal("100000"))
    followers_seed_bulk(portfolio=portfolio, count=FOLLOWERS)

    def order(side: str) -> int:
        (event,) = portfolio_order_place(
            portfolio=portfolio, symbol=btc.symbol, side=side, quantity=Decimal("0.2"), leverage=10
        )
        return event.pk

    growth: dict[str, list[dict[str, tuple[int, int]]]] = {"open": [], "close": []}
    wal: dict[str, list[int]] = {"open": [], "close": []}
    costs: dict[str, list[tuple[float, float, float | None]]] = {"open": [], "close": []}
    with mock.patch.object(events, "dispatch", lambda event_id: None):  # run here, not on a worker
        run_event(order("buy"))  # warm-up: caches, first pages of every table
        run_event(order("sell"))
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")  # full-page images after a checkpoint are part of the cost
        for rep in range(ROUNDS):
            # The close is 1 % up: every copy books a realized profit (a ledger transfer).
            for kind, side, price in (("open", "buy", "60000"), ("close", "sell", "60600")):
                services.price_set(instrument=btc, price=Decimal(price) + rep)
                event_id = order(side)
                with wal_kept():
                    before, wal_before = snapshot()
                    costs[kind].append(run_event(event_id))
                    after, wal_after = snapshot()
                    wal[kind].append(wal_bytes(wal_before, wal_after))
                copied = Execution.objects.filter(event_id=event_id, outcome="COPIED").count()
                assert copied == FOLLOWERS, f"{copied} of {FOLLOWERS} followers copied"
                growth[kind].append(
                    {t: (after[t][0] - before[t][0], after[t][1] - before[t][1]) for t in after if t in before}
                )

    for kind in ("open", "close"):
        per_table = {}
        for table in growth[kind][0]:
            rows = statistics.median(g[table][0] for g in growth[kind]) / FOLLOWERS
            size = statistics.median(g[table][1] for g in growth[kind]) / FOLLOWERS
            if rows or size:
                per_table[table] = (rows, size)
        rows_total = sum(r for r, _ in per_table.values())
        bytes_total = sum(b for _, b in per_table.values())
        print(
            f"footprint event={kind} followers={FOLLOWERS} rows_per_follower={rows_total:.2f} "
            f"bytes_per_follower={bytes_total:.0f} wal_bytes_per_follower={min(wal[kind]) / FOLLOWERS:.0f}",
            flush=True,
        )
        tables = " ".join(
            f"{t}={r:.2f}:{b:.0f}" for t, (r, b) in sorted(per_table.items(), key=lambda item: -item[1][1])
        )
        print(f"footprint_tables event={kind} {tables}", flush=True)
        wall = statistics.median(c[0] for c in costs[kind]) / FOLLOWERS * 1e6
        app = statistics.median(c[1] for c in costs[kind]) / FOLLOWERS * 1e6
        db = [c[2] for c in costs[kind] if c[2] is not None]
        db_text = f"{statistics.median(db) / FOLLOWERS * 1e6:.0f}" if db else "n/a"
        print(
            f"footprint_cpu_per_follower event={kind} followers={FOLLOWERS} wall_us={wall:.0f} "
            f"app_cpu_us={app:.0f} db_cpu_us={db_text}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
