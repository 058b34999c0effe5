"""Watchdog benchmark: one full tick over N active subscriptions on
PostgreSQL, through Redis and a real Celery worker (2 processes on this
2-core machine, draining the tick's chunks in parallel). Half of them are
margin copies with open mirrors, half spot copies with holdings and a spot
sell realized today (``BENCH_WATCHDOG_SPOT_SHARE``, 0.5 by default; 0 gives
the margin-only mix of earlier measurements).

Timed from the tick task's enqueue to the tick's completion stamp (written by
whichever worker finishes its last chunk). Between ticks the marks move, up
and down in turn, so half the ticks raise every wallet's peak equity (a write
per subscription) and half do not; the first tick, which creates every risk
state, is not timed. Prints one line:
    watchdog subscriptions=N median_ms=… p95_ms=…
"""

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from benchmarks.setup import celery_worker, prepare_database

SUBSCRIPTIONS = int(os.environ.get("BENCH_WATCHDOG_SUBSCRIPTIONS", "100000"))
SPOT_SHARE = float(os.environ.get("BENCH_WATCHDOG_SPOT_SHARE", "0.5"))
REPETITIONS = int(os.environ.get("BENCH_REPETITIONS", "7"))
D = Decimal


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def seed(count: int) -> None:
    """``count`` funded followers of one portfolio: the margin copies with two
    open mirrors each (a long ETH and a short BTC, entries spread out), the
    spot copies (every ``1 / SPOT_SHARE``-th) with two holdings each (ETH and
    BTC, costs spread out, paid from the wallet) and an ETH sell realized
    today; a third of all of them with limits."""
    from unittest import mock

    from django.db import connection, transaction

    from backoffice.loadgen import followers_seed_bulk
    from copytrading import bulk, events, ledger, services
    from copytrading.models import (
        AccountKind,
        Holding,
        Instrument,
        Order,
        OrderStatus,
        Position,
        PositionStatus,
        TransferKind,
    )
    from copytrading.venue import ORDER_FIELDS, POSITION_FIELDS
    from followers.models import Subscription
    from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place
    from risk.models import RiskLimits

    services.instruments_seed()
    eth = Instrument.objects.get(symbol="ETH/USDT:USDT")
    btc = Instrument.objects.get(symbol="BTC/USDT:USDT")
    leader = services.user_register(username="bench-leader", password="bench-pass-123")
    services.wallet_deposit(user=leader, amount=D("1000000"))
    portfolio = portfolio_create(leader=leader, name="watchdog bench", mode="all")
    eth_spot = Instrument.objects.get(symbol="ETH/USDT")
    portfolio_fund(portfolio=portfolio, amount=D("500000"))
    with mock.patch.object(events, "dispatch", lambda event_id: None):  # mirrors are written below
        portfolio_order_place(portfolio=portfolio, symbol=eth.symbol, side="buy", quantity=D("10"), leverage=10)
        portfolio_order_place(portfolio=portfolio, symbol=btc.symbol, side="sell", quantity=D("1"), leverage=10)
    leader_eth = Position.objects.get(account_id=portfolio.trading_account_id, instrument=eth)
    leader_btc = Position.objects.get(account_id=portfolio.trading_account_id, instrument=btc)

    for start in range(0, count, 20000):
        size = min(20000, count - start)
        followers_seed_bulk(portfolio=portfolio, count=size)
    subs = list(Subscription.objects.order_by("pk").values_list("pk", "copy_account_id"))
    now = datetime.now(UTC)
    every = round(1 / SPOT_SHARE) if SPOT_SHARE > 0 else 0
    venue_id = ledger.system_account(AccountKind.VENUE).pk
    with transaction.atomic():
        rows, locked, holdings, orders, paid = [], {}, [], [], []
        for i, (sid, account_id) in enumerate(subs):
            if every and i % every == 0:
                eth_cost = D("0.5") * (D("3200") + (i % 40))
                btc_cost = D("0.05") * (D("64000") - (i % 400))
                holdings.append((account_id, "ETH", D("0.5"), eth_cost, D(0)))
                holdings.append((account_id, "BTC", D("0.05"), btc_cost, D(0)))
                # 0.1 ETH more was bought and sold today at a small loss.
                orders.append((account_id, eth_spot.pk, "sell", "market", D("0.1"), D("3190"), 1,
                               OrderStatus.FILLED, None, None, sid, D(0), None, now, now, D("-1")))  # fmt: skip
                paid.append(
                    ledger.TransferSpec(
                        account_id, venue_id, eth_cost + btc_cost + D("1"), TransferKind.SPOT_TRADE,
                        f"bench:spot:{sid}", "bench",
                    )
                )  # fmt: skip
                continue
            eth_entry = D("3200") + (i % 40)
            btc_entry = D("64000") - (i % 400)
            eth_margin = D("0.5") * eth_entry / 10
            btc_margin = D("0.05") * btc_entry / 10
            rows.append((account_id, eth.pk, "long", D("0.5"), D("0.5"), eth_entry, 10, eth_margin,
                         PositionStatus.OPEN, D(0), leader_eth.pk, sid, now))  # fmt: skip
            rows.append((account_id, btc.pk, "short", D("0.05"), D("0.05"), btc_entry, 10, btc_margin,
                         PositionStatus.OPEN, D(0), leader_btc.pk, sid, now))  # fmt: skip
            locked[account_id] = eth_margin + btc_margin
        bulk.insert_rows(Position, POSITION_FIELDS, rows)
        bulk.insert_rows(Holding, ["account", "asset", "quantity", "cost_basis", "reserved"], holdings)
        bulk.insert_rows(Order, ORDER_FIELDS, orders)
        ledger.apply_transfers(paid, locked_deltas=locked)
    # A third of the followers set every limit (far from breaching).
    RiskLimits.objects.bulk_create(
        [
            RiskLimits(
                subscription_id=sid,
                daily_loss_limit_realized=D("1000"),
                daily_loss_limit_unrealized=D("2500"),
                margin_call_level_pct=D("115"),
                max_drawdown_pct=D("60"),
                max_open_positions=10,
                max_exposure_pct=D("500"),
            )
            for sid, _ in subs[::3]
        ],
        batch_size=5000,
    )
    # What autovacuum does on a live database after a bulk load: without
    # statistics the planner takes 100,000 fresh rows for a few dozen.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def move_marks(up: bool, rep: int) -> None:
    """Move the marks directly: price-driven matching is not what this measures."""
    from copytrading.models import Instrument

    step = rep + 1
    for suffix in (":USDT", ""):  # the perpetuals and the spot pairs
        Instrument.objects.filter(symbol=f"ETH/USDT{suffix}").update(mark_price=D("3200") + (step if up else -step))
        Instrument.objects.filter(symbol=f"BTC/USDT{suffix}").update(
            mark_price=D("64000") - (10 * step if up else -step)
        )


def run_tick(at: datetime, expected: int, timeout: float = 300) -> float:
    """Milliseconds from enqueueing the tick to its completion stamp."""
    from risk.models import WatchdogChunk, WatchdogTick
    from risk.tasks import watchdog_tick
    from risk.watchdog import tick_number

    started = time.time()
    watchdog_tick.delay(at.isoformat())
    number = tick_number(at)
    while True:
        done = WatchdogTick.objects.filter(number=number, completed_at__isnull=False).values_list("pk", "completed_at")
        if done:
            tick_id, completed_at = done[0]
            break
        if time.time() - started > timeout:
            raise RuntimeError(f"watchdog tick {number} not done within {timeout} s")
        time.sleep(0.05)  # slow poll: it must not steal CPU from the workers
    checked = sum(WatchdogChunk.objects.filter(tick_id=tick_id).values_list("checked", flat=True))
    assert checked == expected, f"{checked} of {expected} subscriptions checked"
    return (completed_at.timestamp() - started) * 1000


def main() -> int:
    prepare_database()
    from risk.models import RiskEvent

    seed(SUBSCRIPTIONS)
    base = datetime.now(UTC)
    timings = []
    with celery_worker(concurrency=2):
        run_tick(base, SUBSCRIPTIONS)  # creates the risk states: not timed
        for rep in range(REPETITIONS):
            move_marks(up=rep % 2 == 0, rep=rep)
            timings.append(run_tick(base + timedelta(seconds=30 * (rep + 1)), SUBSCRIPTIONS))
    assert not RiskEvent.objects.exists(), "no wallet of the bench breaches a limit"
    print(
        f"watchdog subscriptions={SUBSCRIPTIONS} median_ms={statistics.median(timings):.0f} p95_ms={p95(timings):.0f}"
        f" spot_share={SPOT_SHARE:g}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
