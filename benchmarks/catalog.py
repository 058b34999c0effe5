"""Catalog benchmark: the public catalog list under an open-loop HTTP load
(asyncio + aiohttp) against a real web process (daphne, as in production) on
loopback, on PostgreSQL and Redis, while a leader's orders fan out to their
followers through a real Celery worker at the same time.

Requests are sent on a fixed schedule (RATE per second, whatever the answers
do) and each latency is measured from its scheduled send time, so a stall
counts against every request it delays (no coordinated omission). The mix
covers the lists, filters, multi-key sorts and second pages (cursors).

Prints one line:
    catalog rps=… p99_ms=…
(and ``catalog errors=N`` on stderr, with a failing exit, if any request failed).
"""

import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode

from benchmarks.setup import ROOT, celery_worker, prepare_database

PORTFOLIOS = int(os.environ.get("BENCH_CATALOG_PORTFOLIOS", "10000"))
FOLLOWERS = int(os.environ.get("BENCH_CATALOG_FANOUT_FOLLOWERS", "1000"))
RATE = int(os.environ.get("BENCH_CATALOG_RATE", "200"))
SECONDS = int(os.environ.get("BENCH_CATALOG_SECONDS", "30"))
WARMUP_SECONDS = 3
TIMEOUT = 10.0
QUERIES = [
    {},
    {"list": "margin", "sort": "-roi"},
    {"list": "spot", "roi_min": "0", "sort": "-pnl,-score"},
    {"has_open_slots": "true", "sort": "-followers,-score"},
    {"min_investment_max": "100", "profit_share_max": "20", "sort": "newest"},
    {"win_rate_min": "40", "score_min": "0.3", "sort": "-win_rate"},
    {"list": "all", "mode": "margin,all", "followers_min": "1", "sort": "score", "limit": "50"},
]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def web_process(port: int):
    """daphne serving the project, as `make run` and the Dockerfile start it."""
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/catalog?limit=1", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the web process did not start")
            time.sleep(0.2)
        yield proc
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def fan_out(portfolio_id: int, stop, orders) -> None:
    """The leader buys and sells every second: each order fans out to every
    follower on the worker while the catalog is under load. A process of its
    own, so it takes no CPU time from the load generator's event loop."""
    from django.db import connections

    connections.close_all()  # the parent's connection is not this process's
    from portfolios.models import Portfolio
    from portfolios.services import portfolio_order_place

    portfolio = Portfolio.objects.get(pk=portfolio_id)
    side = "buy"
    while not stop.wait(1.0):
        portfolio_order_place(
            portfolio=portfolio, symbol="BTC/USDT:USDT", side=side, quantity=Decimal("0.2"), leverage=10
        )
        with orders.get_lock():
            orders.value += 1
        side = "sell" if side == "buy" else "buy"
    connections.close_all()


async def load(base: str, urls: list[str], rate: int, seconds: float) -> tuple[list[float], Counter, float]:
    import aiohttp

    latencies: list[float] = []
    errors: Counter = Counter()
    connector = aiohttp.TCPConnector(limit=200)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:

        async def one(url: str, scheduled: float) -> None:
            try:
                async with session.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        errors[f"HTTP {r.status}"] += 1
                        return
            except (TimeoutError, aiohttp.ClientError) as exc:
                errors[type(exc).__name__] += 1
                return
            latencies.append((time.perf_counter() - scheduled) * 1000)

        total = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for n in range(total):
            scheduled = start + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(urls[n % len(urls)], scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return latencies, errors, elapsed


def request_mix(base: str) -> list[str]:
    """Every query's first page and its second page (through its cursor)."""
    import json
    import urllib.request

    urls = []
    for params in QUERIES:
        first = f"/api/v1/catalog?{urlencode(params)}"
        urls.append(first)
        with urllib.request.urlopen(base + first, timeout=5) as r:
            cursor = json.load(r)["next_cursor"]
        if cursor:
            urls.append(f"/api/v1/catalog?{urlencode({**params, 'cursor': cursor})}")
    return urls


def main() -> int:
    prepare_database()
    from backoffice.loadgen import followers_seed_bulk
    from benchmarks.portfolio_seed import seed_portfolios
    from copytrading import services
    from portfolios.scoring import ranking_run
    from portfolios.services import portfolio_create, portfolio_fund
    from portfolios.stats import stats_refresh

    now = datetime.now(UTC)
    seed_portfolios(PORTFOLIOS, now=now, round_trips=5, followers=1)
    leader = services.user_register(username="bench-leader", password="bench-pass-123")
    services.wallet_deposit(user=leader, amount=Decimal("1000000"))
    portfolio = portfolio_create(leader=leader, name="fan-out bench")
    portfolio_fund(portfolio=portfolio, amount=Decimal("500000"))
    followers_seed_bulk(portfolio=portfolio, count=FOLLOWERS)
    stats_refresh(now=now)
    ranking_run(now=now)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    from django.db import connections

    with celery_worker(concurrency=2), web_process(port):
        urls = request_mix(base)
        connections.close_all()
        stop, orders = multiprocessing.Event(), multiprocessing.Value("i", 0)
        driver = multiprocessing.Process(target=fan_out, args=(portfolio.pk, stop, orders), daemon=True)
        driver.start()
        try:
            asyncio.run(load(base, urls, RATE, WARMUP_SECONDS))  # connections, caches: not counted
            latencies, errors, elapsed = asyncio.run(load(base, urls, RATE, SECONDS))
        finally:
            stop.set()
            driver.join(timeout=30)
    assert orders.value >= SECONDS // 2, f"only {orders.value} leader orders fanned out during the load"
    rps = len(latencies) / elapsed
    if latencies:
        ordered = sorted(latencies)
        spread = " ".join(f"p{q}={ordered[round(q / 100 * (len(ordered) - 1))]:.1f}" for q in (50, 90, 95, 99))
        print(f"(catalog latency ms: {spread} max={ordered[-1]:.1f}; leader orders {orders.value})", file=sys.stderr)
    print(f"catalog rps={rps:.0f} p99_ms={p99(latencies) if latencies else float('nan'):.0f}", flush=True)
    if errors:
        detail = ", ".join(f"{kind}: {n}" for kind, n in errors.most_common())
        print(f"catalog errors={errors.total()} ({detail})", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
