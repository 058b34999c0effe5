"""The open fan-out beside a large execution log: the month partitions keep
the hot path's cost flat however many rows past months hold.

The 10,000-follower open of benchmarks/fanout.py (its helpers, a real Celery
worker; each open followed by an untimed close). ``BENCH_PARTITION_ROWS``
(default 20,000,000) execution rows are loaded into the 12 months before this
one (INSERT ... SELECT generate_series in the database, a month per statement;
foreign-key triggers off for the load), then the open is timed in 3
interleaved rounds with those months attached (N existing rows) and detached
(none: only this month's rows, as on an empty log), the order alternating.
Prints:
    partitions_load rows=N seconds=…
    fanout existing_executions=0 followers=10000 median_ms=… p95_ms=…
    fanout existing_executions=N followers=10000 median_ms=… p95_ms=…
    fanout_partitions ratio=… rounds=3 runs=…
The bench database is dropped at the end.
"""

import os
import statistics
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

from benchmarks.fanout import p95, queries_per_chunk, wait_done
from benchmarks.setup import celery_worker, prepare_database

ROWS = int(os.environ.get("BENCH_PARTITION_ROWS", "20000000"))
FOLLOWERS = int(os.environ.get("BENCH_PARTITION_FOLLOWERS", "10000"))
REPETITIONS = int(os.environ.get("BENCH_REPETITIONS", "7"))
ROUNDS = 3
PAST_MONTHS = 12


def load_executions(rows: int, events_by_month: dict) -> float:
    """``rows`` execution rows, an equal share per past month, each month's
    rows on that month's leader event. Returns the seconds it took."""
    from django.db import connection, transaction

    from copytrading import partitions

    started = time.monotonic()
    per_month = rows // len(events_by_month)
    first = 0
    for i, (month, event) in enumerate(sorted(events_by_month.items())):
        n = per_month if i < len(events_by_month) - 1 else rows - first
        with transaction.atomic(), connection.cursor() as cursor:
            # Bench only: the event and order ids are known good; skipping the
            # 20 million foreign-key checks makes the load minutes, not hours.
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(
                f"INSERT INTO {partitions.EXECUTIONS} (event_id, subscription_id, portfolio_id, outcome, "
                "reason_code, leader_quantity, leader_price, follower_quantity, follower_price, created_at, "
                "reason_detail) "
                "SELECT %s, 1000000000 + g, %s, 'COPIED', '', 0.2, 60000, 0.01, 60000, "
                "%s::timestamptz + (g - %s) * interval '100 ms', '' FROM generate_series(%s, %s) AS g",
                [event.pk, event.portfolio_id, event.created_at, first, first, first + n - 1],
            )
        first += n
        print(f"partitions_load month={month:%Y-%m} rows={n} total={first}", file=sys.stderr, flush=True)
    with connection.cursor() as cursor:
        # As a long-lived table would be: vacuumed (visibility map, hint bits)
        # and analyzed, so autovacuum's first pass over the new rows does not
        # run during the timed rounds.
        cursor.execute(f"VACUUM (ANALYZE) {partitions.EXECUTIONS}")
    return time.monotonic() - started


def bound_past_months(months: list) -> None:
    """A validated CHECK of each past month's bounds, so re-attaching it skips
    the scan PostgreSQL otherwise makes (one scan now, none per round)."""
    from django.db import connection

    from copytrading import partitions

    with connection.cursor() as cursor:
        for month in months:
            name = partitions.partition_name(partitions.EXECUTIONS, month)
            cursor.execute(
                f"ALTER TABLE {name} ADD CONSTRAINT {name}_bound CHECK (created_at IS NOT NULL "
                f"AND created_at >= '{month.isoformat()} 00:00+00' "
                f"AND created_at < '{partitions.add_months(month, 1).isoformat()} 00:00+00')"
            )


def attach_past_months(months: list, attached: bool) -> None:
    from django.db import connection

    from copytrading import partitions

    table = partitions.EXECUTIONS
    have = set(partitions.months(table))
    with connection.cursor() as cursor:
        for month in months:
            name = partitions.partition_name(table, month)
            if attached and month not in have:
                cursor.execute(
                    f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{month.isoformat()} 00:00+00') "
                    f"TO ('{partitions.add_months(month, 1).isoformat()} 00:00+00')"
                )
            elif not attached and month in have:
                cursor.execute(f"ALTER TABLE {table} DETACH PARTITION {name}")


def main() -> int:
    base = prepare_database()
    from unittest import mock

    from django.db import connection
    from django.utils import timezone

    from backoffice.loadgen import followers_seed_bulk
    from copytrading import events, partitions, services
    from copytrading.models import Execution, Instrument, LeaderEvent, LeaderEventKind
    from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place

    services.instruments_seed()
    btc = Instrument.objects.get(symbol="BTC/USDT:USDT")
    leader = services.user_register(username="bench-leader", password="bench-pass-123")
    services.wallet_deposit(user=leader, amount=Decimal("1000000"))
    portfolio = portfolio_create(leader=leader, name="bench-partitions")
    portfolio_fund(portfolio=portfolio, amount=Decimal("100000"))
    followers_seed_bulk(portfolio=portfolio, count=FOLLOWERS)

    def order(side, quantity="0.2"):
        (event,) = portfolio_order_place(
            portfolio=portfolio, symbol=btc.symbol, side=side, quantity=Decimal(quantity), leverage=10
        )
        return event

    def opens(rep_offset: int, repetitions: int = REPETITIONS) -> list[float]:
        """The open timed, then the close (untimed), so every round starts flat."""
        times = []
        for rep in range(repetitions):
            services.price_set(instrument=btc, price=Decimal("60000") + rep_offset + rep)
            event = order("buy")
            times.append(wait_done(event.pk, event.created_at.timestamp()))
            copied = Execution.objects.filter(event=event, outcome="COPIED").count()
            assert copied == FOLLOWERS, f"{copied} of {FOLLOWERS} followers copied"
            event = order("sell")
            wait_done(event.pk, event.created_at.timestamp())
        return times

    with mock.patch.object(events, "dispatch", lambda event_id: None):  # warm-up, in this process
        queries_per_chunk(order("buy").pk)
        queries_per_chunk(order("sell").pk)

    # Past months: their partitions, and a leader event in each for the rows.
    this_month = partitions.month_of(timezone.now())
    partitions.ensure(months_ahead=1, first=partitions.add_months(this_month, -PAST_MONTHS))
    history = portfolio_create(leader=leader, name="bench-history")
    events_by_month = {}
    for seq, back in enumerate(range(PAST_MONTHS, 0, -1), start=1):
        month = partitions.add_months(this_month, -back)
        event = LeaderEvent.objects.create(
            portfolio_id=history.pk, seq=seq, kind=LeaderEventKind.POSITION_OPEN, payload={}, status="done"
        )
        LeaderEvent.objects.filter(pk=event.pk).update(created_at=datetime(month.year, month.month, 1, tzinfo=UTC))
        events_by_month[month] = LeaderEvent.objects.get(pk=event.pk)
    past = sorted(events_by_month)
    try:
        with celery_worker(concurrency=2):
            opens(200, repetitions=1)  # the worker's first tasks warm up, untimed
            seconds = load_executions(ROWS, events_by_month)
            print(f"partitions_load rows={ROWS} seconds={seconds:.0f}", flush=True)
            bound_past_months(past)
            # Interleaved rounds, the past months attached (N rows) or detached
            # (none: the tables hold only this month's rows, as before the load),
            # the order alternating, so the machine's drift falls on both.
            times: dict[bool, list[float]] = {True: [], False: []}
            per_round = -(-REPETITIONS // ROUNDS)
            for i in range(ROUNDS):
                for attached in (i % 2 == 0, i % 2 == 1):
                    attach_past_months(past, attached)
                    times[attached] += opens(1000 * i + 10 * attached, repetitions=per_round)
            attach_past_months(past, True)
            for attached, label in ((False, 0), (True, ROWS)):
                print(
                    f"fanout existing_executions={label} followers={FOLLOWERS} "
                    f"median_ms={statistics.median(times[attached]):.0f} p95_ms={p95(times[attached]):.0f}",
                    flush=True,
                )
            ratio = statistics.median(times[True]) / statistics.median(times[False])
            print(f"fanout_partitions ratio={ratio:.2f} rounds={ROUNDS} runs={len(times[True])}", flush=True)
    finally:
        connection.close()
        drop_database(base)
    return 0


def drop_database(url: str) -> None:
    from urllib.parse import urlparse

    import psycopg

    parsed = urlparse(url)
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
