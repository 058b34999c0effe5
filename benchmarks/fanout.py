"""Fan-out benchmark: one leader market order to N followers, on PostgreSQL,
through Redis and a real Celery worker (2 processes on this 2-core machine).

Timed from the leader's event being written (inside the leader's
transaction, so the leader's commit is counted too) to the moment the event
is done, i.e. the last chunk's follower orders are committed. Prints one line per N:
    fanout followers=N median_ms=… p95_ms=… queries_per_chunk=…
and the same for the leader's partial close (``fanout_reduce``: 0.07 of the
0.2 BTC position, every mirror reduced by its share) and full close of the
rest (``fanout_close``), and for a spot portfolio's sell of the whole position at a profit
(``fanout spot_sell``: every copy wallet realizes a gain and accrues its
15 % profit share in the chunk's transaction):
    fanout spot_sell followers=N median_ms=… p95_ms=… queries_per_chunk=…

Beside the open, in the same run, its floor (benchmarks/fanout_floor.py: the
same position, order and execution rows and account updates written with
COPY into scratch copies of the tables, one transaction), one floor round
after each open round (interleaved), and the ratio of the medians; both
without and with the tables' foreign keys (``fk_``), which the fan-out pays:
    fanout_floor followers=N median_ms=… fk_median_ms=…
    fanout_ratio followers=N ratio=… fk_ratio=…
Then the open with 1 and with 2 worker processes (the prefork pool's size),
the two alternated round by round, timed in the same way:
    fanout workers=N followers=N median_ms=… p95_ms=…
"""

import os
import statistics
import sys
import time
from decimal import Decimal

from benchmarks import fanout_floor
from benchmarks.setup import celery_worker, prepare_database

SIZES = [int(s) for s in os.environ.get("BENCH_FANOUT_SIZES", "1000,10000").split(",")]
REPETITIONS = int(os.environ.get("BENCH_REPETITIONS", "7"))
WORKERS = [int(s) for s in os.environ.get("BENCH_FANOUT_WORKERS", "1,2").split(",")]


def queries_per_chunk(event_id: int) -> int:
    """Run one event in this process and count the queries of its first chunk."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from copytrading import propagation

    chunk_ids = propagation.event_start(event_id)
    with CaptureQueriesContext(connection) as ctx:
        propagation.chunk_propagate(chunk_ids[0])
    for chunk_id in chunk_ids[1:]:
        propagation.chunk_propagate(chunk_id)
    assert propagation.event_complete(event_id)
    return len(ctx.captured_queries)


def wait_done(event_id: int, committed_at: float, timeout: float = 120) -> float:
    """Milliseconds from the leader's commit to the event's completion, which
    the last chunk stamps right after its own commit (same machine clock). The
    poll is slow on purpose: it must not steal CPU from the workers."""
    from copytrading.models import LeaderEvent, LeaderEventStatus

    while True:
        status, completed_at = LeaderEvent.objects.values_list("status", "completed_at").get(pk=event_id)
        if status == LeaderEventStatus.DONE:
            return (completed_at.timestamp() - committed_at) * 1000
        if time.time() - committed_at > timeout:
            raise RuntimeError(f"event {event_id} not done within {timeout} s")
        time.sleep(0.05)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    prepare_database()
    from unittest import mock

    from backoffice.loadgen import followers_seed_bulk
    from copytrading import events, services
    from copytrading.models import Execution, Instrument
    from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place

    services.instruments_seed()
    btc = Instrument.objects.get(symbol="BTC/USDT:USDT")
    eth = Instrument.objects.get(symbol="ETH/USDT")
    leader = services.user_register(username="bench-leader", password="bench-pass-123")
    services.wallet_deposit(user=leader, amount=Decimal("1000000"))

    def order(portfolio, side, quantity="0.2"):
        (event,) = portfolio_order_place(
            portfolio=portfolio, symbol=btc.symbol, side=side, quantity=Decimal(quantity), leverage=10
        )
        return event

    def spot(portfolio, side):
        (event,) = portfolio_order_place(
            portfolio=portfolio, symbol=eth.symbol, side=side, quantity=Decimal("1"), leverage=1
        )
        return event

    portfolios, spot_portfolios = {}, {}
    queries, spot_queries = {}, {}
    # Warm-up and query count in this process, dispatch switched off.
    with mock.patch.object(events, "dispatch", lambda event_id: None):
        for n in SIZES:
            portfolios[n] = portfolio_create(leader=leader, name=f"bench-{n}")
            portfolio_fund(portfolio=portfolios[n], amount=Decimal("100000"))
            followers_seed_bulk(portfolio=portfolios[n], count=n)
            queries[n] = queries_per_chunk(order(portfolios[n], "buy").pk)
            queries_per_chunk(order(portfolios[n], "sell", "0.07").pk)
            queries_per_chunk(order(portfolios[n], "sell", "0.13").pk)
            spot_portfolios[n] = portfolio_create(
                leader=leader, name=f"bench-spot-{n}", mode="spot", profit_share_pct=Decimal("15.00")
            )
            portfolio_fund(portfolio=spot_portfolios[n], amount=Decimal("100000"))
            followers_seed_bulk(portfolio=spot_portfolios[n], count=n)
            services.price_set(instrument=eth, price=Decimal("3000"))
            queries_per_chunk(spot(spot_portfolios[n], "buy").pk)
            services.price_set(instrument=eth, price=Decimal("3100"))
            spot_queries[n] = queries_per_chunk(spot(spot_portfolios[n], "sell").pk)

    from django.conf import settings

    fanout_floor.scratch_create(with_foreign_keys=False)
    fanout_floor.scratch_create(with_foreign_keys=True)
    with celery_worker(concurrency=2):
        for n in SIZES:
            opens, reduces, closes = [], [], []
            floors, fk_floors, floor_rows = [], [], None
            for rep in range(REPETITIONS):
                services.price_set(instrument=btc, price=Decimal("60000") + rep)
                event = order(portfolios[n], "buy")
                opens.append(wait_done(event.pk, event.created_at.timestamp()))
                copied = Execution.objects.filter(event=event, outcome="COPIED").count()
                assert copied == n, f"{copied} of {n} followers copied"
                if floor_rows is None:
                    floor_rows = fanout_floor.event_rows(event.pk)
                    assert len(floor_rows["copytrading_execution"][1]) == n
                for fks, into in ((False, floors), (True, fk_floors)):
                    into.append(
                        fanout_floor.floor_round(
                            floor_rows, async_commit=settings.FANOUT_ASYNC_COMMIT, with_foreign_keys=fks
                        )
                    )
                event = order(portfolios[n], "sell", "0.07")
                reduces.append(wait_done(event.pk, event.created_at.timestamp()))
                event = order(portfolios[n], "sell", "0.13")
                closes.append(wait_done(event.pk, event.created_at.timestamp()))
            print(
                f"fanout followers={n} median_ms={statistics.median(opens):.0f} p95_ms={p95(opens):.0f} "
                f"queries_per_chunk={queries[n]}",
                flush=True,
            )
            floor, fk_floor, fanout = statistics.median(floors), statistics.median(fk_floors), statistics.median(opens)
            print(f"fanout_floor followers={n} median_ms={floor:.0f} fk_median_ms={fk_floor:.0f}", flush=True)
            print(f"fanout_ratio followers={n} ratio={fanout / floor:.2f} fk_ratio={fanout / fk_floor:.2f}", flush=True)
            print(
                f"fanout_reduce followers={n} median_ms={statistics.median(reduces):.0f} p95_ms={p95(reduces):.0f}",
                flush=True,
            )
            print(
                f"fanout_close followers={n} median_ms={statistics.median(closes):.0f} p95_ms={p95(closes):.0f}",
                flush=True,
            )
            sells = []
            for rep in range(REPETITIONS):
                services.price_set(instrument=eth, price=Decimal("3000") + rep)
                event = spot(spot_portfolios[n], "buy")
                wait_done(event.pk, event.created_at.timestamp())
                services.price_set(instrument=eth, price=Decimal("3100") + rep)  # every copy sells at a profit
                event = spot(spot_portfolios[n], "sell")
                sells.append(wait_done(event.pk, event.created_at.timestamp()))
                sold = Execution.objects.filter(event=event, outcome="COPIED").count()
                assert sold == n, f"{sold} of {n} followers sold"
            print(
                f"fanout spot_sell followers={n} median_ms={statistics.median(sells):.0f} p95_ms={p95(sells):.0f} "
                f"queries_per_chunk={spot_queries[n]}",
                flush=True,
            )

    # Scale-out: the same open with 1 and 2 worker processes, the counts
    # alternated round by round (the machine's load drifts), each worker
    # warmed by one open and close before the timed one.
    scale: dict[int, dict[int, list[float]]] = {w: {n: [] for n in SIZES} for w in WORKERS}
    price = Decimal("61000")
    for _ in range(REPETITIONS):
        for workers in WORKERS:
            with celery_worker(concurrency=workers):
                for n in SIZES:
                    for warm in (True, False):
                        price += 1
                        services.price_set(instrument=btc, price=price)
                        event = order(portfolios[n], "buy")
                        elapsed = wait_done(event.pk, event.created_at.timestamp())
                        if not warm:
                            scale[workers][n].append(elapsed)
                        event = order(portfolios[n], "sell")
                        wait_done(event.pk, event.created_at.timestamp())
    for workers in WORKERS:
        for n in SIZES:
            measured = scale[workers][n]
            print(
                f"fanout workers={workers} followers={n} median_ms={statistics.median(measured):.0f} "
                f"p95_ms={p95(measured):.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
