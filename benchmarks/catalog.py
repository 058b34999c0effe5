"""Catalog benchmark: the public catalog list under an open-loop HTTP load
(asyncio + aiohttp) against a real web process (daphne, as in production) on
loopback, on PostgreSQL and Redis, while a leader's orders fan out to their
followers through a real Celery worker at the same time.

Requests are sent on a fixed schedule (RATE per second, whatever the answers
do) and each latency is measured from its scheduled send time, so a stall
counts against every request it delays (no coordinated omission). The mix
covers the lists, filters, multi-key sorts and second pages (cursors).

Then the same mix with both catalog caches OFF (``CATALOG_CACHE_SECONDS=0``:
the ASGI micro-cache and the shared cache), without the fan-out, against 1 and
then 2 daphne processes. Each process listens on a port of its own and the
load generator spreads the requests over them in turn (what a load balancer
in front of several daphne processes does; no SO_REUSEPORT, which daphne
cannot set). Requests are offered at BENCH_CATALOG_OFF_RATE (300/s, the goal)
and a request that times out (in the client, or the web process's request
deadline: 503) is counted, not fatal: past capacity the latency grows without
bound, which is the measurement.

Prints:
    catalog rps=… p99_ms=…
    catalog processes=1 cache=off rps=… p99_ms=… cpu_ms=… timeouts=… capacity_rps=… capacity_p99_ms=…
    catalog processes=2 cache=off rps=… p99_ms=… cpu_ms=… timeouts=… capacity_rps=… capacity_p99_ms=…
``capacity_rps`` comes from a closed loop run first (2 clients per process,
each sending when answered: no backlog): past capacity the open loop's
throughput collapses, since daphne goes on working for requests the client
already gave up (a sync view cannot be cancelled). ``cpu_ms`` is the web
processes' CPU time (user + system) per answered request, the figure least
moved by other work on the machine; the load generator's own CPU share is
printed on stderr. ``catalog errors=N`` goes to stderr, with a failing exit,
if any request failed (other than an uncached timeout).
"""

import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

from benchmarks.setup import ROOT, celery_worker, prepare_database

PORTFOLIOS = int(os.environ.get("BENCH_CATALOG_PORTFOLIOS", "10000"))
FOLLOWERS = int(os.environ.get("BENCH_CATALOG_FANOUT_FOLLOWERS", "1000"))
RATE = int(os.environ.get("BENCH_CATALOG_RATE", "200"))
OFF_RATE = int(os.environ.get("BENCH_CATALOG_OFF_RATE", "300"))
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


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def web_processes(count: int, *, cache: bool = True):
    """``count`` daphne processes on ports of their own; yields their base URLs
    and their pids."""
    with ExitStack() as stack:
        ports = [free_port() for _ in range(count)]
        procs = [stack.enter_context(web_process(port, cache=cache)) for port in ports]
        yield [f"http://127.0.0.1:{port}" for port in ports], [p.pid for p in procs]


@contextmanager
def web_process(port: int, *, cache: bool = True):
    """daphne serving the project, as `make run` and the Dockerfile start it."""
    import urllib.request

    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    if not cache:
        env["CATALOG_CACHE_SECONDS"] = "0"  # the micro-cache and (no live record yet) the shared cache
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
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
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # an overloaded daphne still drains its thread pool's backlog
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


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


async def load(bases: list[str], urls: list[str], rate: int, seconds: float) -> tuple[list[float], Counter, float]:
    """Open loop: request n at start + n/rate, to bases[n % len(bases)]."""
    import aiohttp

    latencies: list[float] = []
    errors: Counter = Counter()
    connector = aiohttp.TCPConnector(limit=200 * len(bases), limit_per_host=200)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

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
            url = bases[n % len(bases)] + urls[(n // len(bases)) % len(urls)]
            tasks.append(asyncio.create_task(one(url, scheduled)))
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


async def closed_loop(bases: list[str], urls: list[str], per_base: int, seconds: float) -> tuple[list[float], float]:
    """Capacity: ``per_base`` clients per process, each sending its next
    request when the last is answered (no backlog, so nothing is abandoned)."""
    import aiohttp

    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        start = time.perf_counter()

        async def client(n: int) -> None:
            base, i = bases[n % len(bases)], n
            while time.perf_counter() - start < seconds:
                sent = time.perf_counter()
                async with session.get(base + urls[i % len(urls)]) as r:
                    await r.read()
                    if r.status == 200:
                        latencies.append((time.perf_counter() - sent) * 1000)
                i += 1

        await asyncio.gather(*(client(n) for n in range(per_base * len(bases))))
        elapsed = time.perf_counter() - start
    return latencies, elapsed


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    if not ordered:
        return "no answers"
    spread = " ".join(f"p{q}={ordered[round(q / 100 * (len(ordered) - 1))]:.1f}" for q in (50, 90, 95, 99))
    return f"{spread} max={ordered[-1]:.1f}"


def uncached(processes: int, urls: list[str]) -> tuple[str, Counter]:
    """The mix at OFF_RATE against ``processes`` daphne processes, caches off."""
    from django.db import connections

    connections.close_all()
    with web_processes(processes, cache=False) as (bases, pids):
        # First what the processes answer with no backlog, then the open loop
        # (after which they are still working off requests the client gave up).
        capacity, capacity_elapsed = asyncio.run(closed_loop(bases, urls, 2, SECONDS / 2))
        asyncio.run(load(bases, urls, OFF_RATE, WARMUP_SECONDS))
        web_before = sum(cpu_seconds(pid) for pid in pids)
        own_before = time.process_time()
        latencies, errors, elapsed = asyncio.run(load(bases, urls, OFF_RATE, SECONDS))
        own = (time.process_time() - own_before) / elapsed
        web = sum(cpu_seconds(pid) for pid in pids) - web_before
    # Past capacity requests time out in the client or get the web process's
    # request-deadline 503: the measurement, not a defect.
    timeouts = errors.pop("TimeoutError", 0) + errors.pop("HTTP 503", 0)
    cpu_ms = web * 1000 / max(1, len(latencies))
    print(
        f"(catalog processes={processes} cache=off latency ms: {summary(latencies)}; "
        f"the load generator used {own:.0%} of a core, the web processes {web / elapsed:.0%})",
        file=sys.stderr,
    )
    line = (
        f"catalog processes={processes} cache=off rps={len(latencies) / elapsed:.0f} "
        f"p99_ms={p99(latencies) if latencies else float('nan'):.0f} cpu_ms={cpu_ms:.2f} timeouts={timeouts} "
        f"capacity_rps={len(capacity) / capacity_elapsed:.0f} "
        f"capacity_p99_ms={p99(capacity) if capacity else float('nan'):.0f}"
    )
    return line, errors


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
    from django.db import connection, connections

    # The statistics rows were written after the seed's ANALYZE: without
    # planner statistics PostgreSQL picks hash joins over every row (20-50 ms a
    # page instead of 1-10). In production autovacuum analyzes them within a
    # minute of the first refresh.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    errors: Counter = Counter()
    with celery_worker(concurrency=2), web_processes(1) as (bases, _):
        urls = request_mix(bases[0])
        connections.close_all()
        stop, orders = multiprocessing.Event(), multiprocessing.Value("i", 0)
        driver = multiprocessing.Process(target=fan_out, args=(portfolio.pk, stop, orders), daemon=True)
        driver.start()
        try:
            asyncio.run(load(bases, urls, RATE, WARMUP_SECONDS))  # connections, caches: not counted
            latencies, errors, elapsed = asyncio.run(load(bases, urls, RATE, SECONDS))
        finally:
            stop.set()
            driver.join(timeout=30)
    assert orders.value >= SECONDS // 2, f"only {orders.value} leader orders fanned out during the load"
    rps = len(latencies) / elapsed
    if latencies:
        print(f"(catalog latency ms: {summary(latencies)}; leader orders {orders.value})", file=sys.stderr)
    print(f"catalog rps={rps:.0f} p99_ms={p99(latencies) if latencies else float('nan'):.0f}", flush=True)
    for processes in (1, 2):
        line, more = uncached(processes, urls)
        print(line, flush=True)
        errors.update(more)
    if errors:
        detail = ", ".join(f"{kind}: {n}" for kind, n in errors.most_common())
        print(f"catalog errors={errors.total()} ({detail})", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
