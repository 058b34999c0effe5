"""Live-stream benchmark: S real WebSocket clients (a separate load process,
benchmarks.stream_load) against one daphne process on PostgreSQL and Redis,
each subscribed to ``prices`` (4 instruments) and ``copies`` (its copy holds
mirrors in the same 4 instruments, so every tick changes its PnL). The marks
of the 4 instruments move once a second, in one transaction, through
``price_set`` (the simulator's and the staff API's path). Measured: from the
mark's time (stamped before its commit) to the client reading the frame that
carries it; messages (frames) per second received by all clients; the daphne
process's resident memory per socket (after the clients connected and got
their snapshots, less before).

Prints, per size (``BENCH_STREAM_SOCKETS``, default 2000,5000):
    stream sockets=S p50_ms=… p99_ms=… msgs_per_s=… rss_kb_per_socket=…
and the channel layers' notice latency (group_send → the hub's receive), for
the choice between them (docs/decisions.md):
    stream_layer layer=core|pubsub notices=N p50_ms=… p99_ms=…
"""

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal

from benchmarks.setup import ROOT, prepare_database

SIZES = [int(s) for s in os.environ.get("BENCH_STREAM_SOCKETS", "2000,5000").split(",")]
SECONDS = int(os.environ.get("BENCH_STREAM_SECONDS", "20"))
USERS = 50
PERPS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "AVAX/USDT:USDT"]
D = Decimal


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def seed() -> list[str]:
    """A leader with a long in each of the 4 perps and USERS followers
    mirroring them; returns one API token per follower."""
    from backoffice.loadgen import followers_seed_bulk
    from config.celery import app
    from copytrading import services
    from copytrading.auth.services import auth_token_create
    from followers.models import Subscription
    from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place

    app.conf.task_always_eager = True
    services.instruments_seed()
    leader = services.user_register(username="bench-leader", password="bench-pass-123")
    services.wallet_deposit(user=leader, amount=D("1000000"))
    portfolio = portfolio_create(leader=leader, name="stream-bench")
    portfolio_fund(portfolio=portfolio, amount=D("500000"))
    followers_seed_bulk(portfolio=portfolio, count=USERS, funding=D("100000"))
    for symbol, quantity in zip(PERPS, ["0.5", "5", "100", "300"], strict=True):
        portfolio_order_place(portfolio=portfolio, symbol=symbol, side="buy", quantity=D(quantity), leverage=10)
    app.conf.task_always_eager = False
    users = Subscription.objects.filter(portfolio=portfolio).select_related("follower").order_by("pk")
    return [auth_token_create(user=s.follower)[1] for s in users]


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_daphne(port: int) -> subprocess.Popen:
    env = {**os.environ, "STREAM_MAX_SOCKETS_PER_USER": "100000", "DJANGO_SERVE_STATIC": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("daphne did not start") from None
            time.sleep(0.3)


def tick(step: int, committed: dict[float, float]) -> None:
    """Move the 4 marks in one transaction; record when it committed, by the
    marks' times (a mark's time is stamped before matching runs, so latency
    is counted from the commit: the moment the tick exists for anyone)."""
    from django.db import transaction

    from copytrading.models import Instrument
    from copytrading.services import price_set

    stamps = []
    with transaction.atomic():
        for instrument in Instrument.objects.filter(symbol__in=PERPS).order_by("pk"):
            factor = D("1.001") if step % 2 else D("0.999")
            stamps.append(price_set(instrument=instrument, price=instrument.mark_price * factor).price_updated_at)
    now = time.time()
    for stamp in stamps:
        committed[stamp.timestamp()] = now


def run_size(sockets: int, tokens: list[str]) -> None:
    import socket as socketlib

    with socketlib.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    daphne = start_daphne(port)
    try:
        time.sleep(1)
        before = rss_kb(daphne.pid)
        orders = {"url": f"ws://127.0.0.1:{port}/ws/stream/", "tokens": tokens, "symbols": PERPS, "sockets": sockets}
        load = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.stream_load", json.dumps(orders)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        connected = load.stdout.readline()
        if not connected:
            raise RuntimeError("the load process failed to connect its clients")
        time.sleep(2)
        after = rss_kb(daphne.pid)
        load.stdin.write("measure\n")
        load.stdin.flush()
        committed: dict[float, float] = {}
        for step in range(SECONDS):
            started = time.monotonic()
            tick(step, committed)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        time.sleep(1)
        load.stdin.write("stop\n")
        load.stdin.flush()
        result = json.loads(load.stdout.readline())
        load.stdin.close()
        load.wait(60)
        latencies = [(arrived - committed[at]) * 1000 for at, arrived in result["latencies"] if at in committed]
        print(
            f"stream sockets={sockets} p50_ms={statistics.median(latencies):.0f} "
            f"p99_ms={percentile(latencies, 0.99):.0f} msgs_per_s={result['messages'] / result['seconds']:.0f} "
            f"rss_kb_per_socket={(after - before) / sockets:.1f}"
            + (f" closed={result['closed']}" if result["closed"] else ""),
            flush=True,
        )
    finally:
        daphne.terminate()
        daphne.wait(30)


def layer_latency(backend: str, count: int = 400) -> None:
    """group_send from a writer thread (as after a commit) → a receiver on
    the layer's group (as the hub)."""
    from asgiref.sync import async_to_sync
    from django.conf import settings
    from django.utils.module_loading import import_string

    layer = import_string(backend)(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    latencies: list[float] = []
    joined = threading.Event()

    async def receive() -> None:
        channel = await layer.new_channel("bench.hub.")
        await layer.group_add("bench.hubs", channel)
        joined.set()
        while len(latencies) < count:
            message = await layer.receive(channel)
            latencies.append((time.time() - message["t"]) * 1000)

    def send() -> None:
        joined.wait(10)
        for _ in range(count):
            async_to_sync(layer.group_send)("bench.hubs", {"type": "hub.mark", "t": time.time()})
            time.sleep(0.005)

    writer = threading.Thread(target=send)
    writer.start()
    asyncio.run(asyncio.wait_for(receive(), 60))
    writer.join()
    name = "pubsub" if "PubSub" in backend else "core"
    print(
        f"stream_layer layer={name} notices={count} p50_ms={statistics.median(latencies):.2f} "
        f"p99_ms={percentile(latencies, 0.99):.2f}",
        flush=True,
    )


def main() -> int:
    prepare_database()
    tokens = seed()
    for backend in (
        "copytrading.stream.layers.BoundedRedisChannelLayer",
        "copytrading.stream.layers.BoundedRedisPubSubChannelLayer",
    ):
        layer_latency(backend)
    for sockets in SIZES:
        run_size(sockets, tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
