"""Copying onto exchange accounts: N followers bound to accounts on the
exchange double, which answers every request after 100 ms (it runs in a
process of its own, ``tests/exchange_double/serve.py``, so its threads and
ccxt's do not share one interpreter lock).

1. The submitter alone (``copytrading.exchanges.submitter.submit_orders``, in
   this process, warm: one unmeasured round first, as a long-lived worker
   is): N pending exchange orders made directly, timed from the call to the
   last order's acknowledgement (``acknowledged_at``, stamped when the
   exchange's answer arrived):
       submit orders=N latency_ms=100 median_ms=… p95_ms=… duplicates=… concurrency=…
2. End to end, through a real Celery worker: the leader's order on a
   portfolio whose followers' copy wallets are bound to their exchange
   accounts (``Account.exchange_account``) → propagation → pending exchange
   orders → ``exchange.submit`` → the double; timed from the leader's event
   to the last follower order acknowledged:
       fanout venue=exchange followers=N latency_ms=100 median_ms=… p95_ms=… duplicates=…
   This needs the engine's exchange venue (registered as ``"exchange"``);
   without it the line says it was skipped.

``duplicates`` counts orders on the double beyond one per client order id.
Sizes: ``BENCH_EXCHANGE_SIZES`` (default 1000,5000); repetitions:
``BENCH_REPETITIONS`` (default 5). ``BENCH_VERBOSE=1`` prints each in-process round's CPU and
wall time; ``BENCH_PROFILE=1`` profiles one round (the calling thread)."""

import base64
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal

from benchmarks.setup import ROOT, celery_worker, prepare_database

SIZES = [int(s) for s in os.environ.get("BENCH_EXCHANGE_SIZES", "1000,5000").split(",")]
REPETITIONS = int(os.environ.get("BENCH_REPETITIONS", "5"))
LATENCY = 0.1
KEY_PREFIX = "bench"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def start_double(accounts: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.exchange_double.serve", "--accounts", str(accounts),
         "--latency", str(LATENCY), "--key-prefix", KEY_PREFIX],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"the exchange double did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def duplicates(url: str, client_order_ids: list[str]) -> int:
    with urllib.request.urlopen(f"{url}/_double/orders", timeout=30) as answer:
        counts = json.load(answer)["orders"]
    missing = [cid for cid in client_order_ids if cid not in counts]
    if missing:
        raise RuntimeError(f"{len(missing)} orders never reached the double, e.g. {missing[:3]}")
    return sum(counts[cid] - 1 for cid in client_order_ids)


def link_accounts(users) -> list:
    """One linked account per user, keyed as the double's accounts are."""
    from django.utils import timezone

    from copytrading.exchanges import crypto
    from copytrading.exchanges.models import ExchangeAccount, ExchangeAccountStatus
    from tests.exchange_double.serve import account_keys

    now = timezone.now()
    rows = []
    for index, user in enumerate(users):
        api_key, secret = account_keys(KEY_PREFIX, index)
        rows.append(
            ExchangeAccount(
                user=user, exchange="binanceusdm", label="bench", api_key_encrypted=crypto.encrypt(api_key),
                secret_encrypted=crypto.encrypt(secret), passphrase_encrypted=crypto.encrypt(""),
                api_key_hint=crypto.mask(api_key), api_key_fingerprint=crypto.fingerprint("binanceusdm", api_key),
                status=ExchangeAccountStatus.VALID, permissions=None, created_at=now, last_validated_at=now,
            )
        )  # fmt: skip
    return ExchangeAccount.objects.bulk_create(rows, batch_size=2000)


def submitter_alone(url: str, accounts: list, n: int) -> None:
    from django.conf import settings
    from django.db.models import Max
    from django.utils import timezone

    from copytrading.exchanges.models import ExchangeOrder, ExchangeOrderStatus
    from copytrading.exchanges.submitter import submit_orders

    times = []
    dupes = 0
    for rep in range(REPETITIONS + 1):  # the first one warms the threads, clients and markets up
        now = timezone.now()
        rows = ExchangeOrder.objects.bulk_create(
            [
                ExchangeOrder(
                    exchange_account=account, client_order_id=f"ct-b{n}-{rep}-{account.pk}", symbol="BTC/USDT:USDT",
                    side="buy", quantity=Decimal("0.002"), decided_at=now,
                )
                for account in accounts[:n]
            ],
            batch_size=2000,
        )  # fmt: skip
        ids = [row.pk for row in rows]
        started = timezone.now()
        cpu = time.process_time()
        if os.environ.get("BENCH_PROFILE") and rep == 1:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            report = profile.runcall(submit_orders, ids)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        else:
            report = submit_orders(ids)
        if os.environ.get("BENCH_VERBOSE"):
            print(f"  cpu_s={time.process_time() - cpu:.2f} wall_s={(timezone.now() - started).total_seconds():.2f}")
        done = ExchangeOrder.objects.filter(pk__in=ids)
        assert report.filled == n and done.filter(status=ExchangeOrderStatus.FILLED).count() == n, report
        last = done.aggregate(at=Max("acknowledged_at"))["at"]
        if rep:
            times.append((last - started).total_seconds() * 1000)
        dupes += duplicates(url, [row.client_order_id for row in rows])
    print(
        f"submit orders={n} latency_ms={int(LATENCY * 1000)} median_ms={statistics.median(times):.0f} "
        f"p95_ms={p95(times):.0f} duplicates={dupes} concurrency={settings.EXCHANGE_SUBMIT_CONCURRENCY}",
        flush=True,
    )


def pending_orders(accounts: list, tag: str) -> list[int]:
    from django.utils import timezone

    from copytrading.exchanges.models import ExchangeOrder

    now = timezone.now()
    rows = ExchangeOrder.objects.bulk_create(
        [
            ExchangeOrder(
                exchange_account=account, client_order_id=f"ct-b{tag}-{account.pk}", symbol="BTC/USDT:USDT",
                side="buy", quantity=Decimal("0.002"), decided_at=now,
            )
            for account in accounts
        ],
        batch_size=2000,
    )  # fmt: skip
    return [row.pk for row in rows]


def wait_final(ids: list[int], timeout: float = 300):
    from django.db.models import Max

    from copytrading.exchanges.models import EXCHANGE_ORDER_FINAL, ExchangeOrder

    orders = ExchangeOrder.objects.filter(pk__in=ids)
    deadline = time.monotonic() + timeout
    while orders.filter(status__in=EXCHANGE_ORDER_FINAL).count() < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{orders.filter(status__in=EXCHANGE_ORDER_FINAL).count()} of {len(ids)} final")
        time.sleep(0.05)
    return orders.aggregate(at=Max("acknowledged_at"))["at"]


def submitter_workers(url: str, accounts: list, n: int) -> None:
    """The same through a real worker (2 prefork processes), one
    ``exchange.submit`` task per CHUNK orders, as the engine queues them."""
    from django.utils import timezone

    from copytrading import enqueue
    from copytrading.exchanges.models import ExchangeOrder
    from copytrading.exchanges.submitter import SUBMIT_TASK

    chunk = int(os.environ.get("FANOUT_CHUNK_SIZE", "500"))
    times, dupes = [], 0
    with celery_worker(concurrency=2):
        for rep in range(REPETITIONS + 1):
            ids = pending_orders(accounts[:n], f"w{n}-{rep}")
            started = timezone.now()
            for start in range(0, n, chunk):
                enqueue.task(SUBMIT_TASK).delay(ids[start : start + chunk])
            last = wait_final(ids)
            if rep:
                times.append((last - started).total_seconds() * 1000)
            dupes += duplicates(
                url, list(ExchangeOrder.objects.filter(pk__in=ids).values_list("client_order_id", flat=True))
            )
    print(
        f"submit orders={n} latency_ms={int(LATENCY * 1000)} workers=2 tasks_of={chunk} "
        f"median_ms={statistics.median(times):.0f} p95_ms={p95(times):.0f} duplicates={dupes}",
        flush=True,
    )


def end_to_end(url: str, n: int, leader) -> None:
    from django.db.models import Max

    from backoffice.loadgen import followers_seed_bulk
    from copytrading.exchanges.models import EXCHANGE_ORDER_FINAL, ExchangeOrder
    from copytrading.models import Account, Instrument
    from copytrading.venues import _venues
    from followers.models import Subscription
    from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place

    prefix = f"fanout venue=exchange followers={n} latency_ms={int(LATENCY * 1000)}"
    if "exchange" not in _venues:
        print(f"{prefix} skipped: no venue registered as 'exchange' (the engine side is not merged)", flush=True)
        return
    btc = Instrument.objects.get(symbol="BTC/USDT:USDT")
    portfolio = portfolio_create(leader=leader, name=f"bench-exchange-{n}")
    portfolio_fund(portfolio=portfolio, amount=Decimal("100000"))
    subscription_ids = followers_seed_bulk(portfolio=portfolio, count=n)
    wallets = list(
        Subscription.objects.filter(pk__in=subscription_ids).order_by("pk").values_list("copy_account_id", "follower")
    )
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.in_bulk([user_id for _, user_id in wallets])
    linked = link_accounts([users[user_id] for _, user_id in wallets])
    for (wallet_id, _), account in zip(wallets, linked, strict=True):
        Account.objects.filter(pk=wallet_id).update(exchange_account=account)

    times, dupes = [], 0
    with celery_worker(concurrency=2):
        for rep in range(REPETITIONS):
            side = "buy" if rep % 2 == 0 else "sell"  # open, close, open…: every copy is sized again
            (event,) = portfolio_order_place(
                portfolio=portfolio, symbol=btc.symbol, side=side, quantity=Decimal("0.2"), leverage=10
            )
            orders = ExchangeOrder.objects.filter(leader_event_id=event.pk)
            deadline = time.monotonic() + 300
            while orders.filter(status__in=EXCHANGE_ORDER_FINAL).count() < n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{orders.filter(status__in=EXCHANGE_ORDER_FINAL).count()} of {n} final")
                time.sleep(0.1)
            last = orders.aggregate(at=Max("acknowledged_at"))["at"]
            times.append((last - event.created_at).total_seconds() * 1000)
            dupes += duplicates(url, list(orders.values_list("client_order_id", flat=True)))
    print(f"{prefix} median_ms={statistics.median(times):.0f} p95_ms={p95(times):.0f} duplicates={dupes}", flush=True)


def main() -> int:
    double, url = start_double(max(SIZES))
    try:
        os.environ["EXCHANGE_URL_OVERRIDE"] = url
        os.environ.setdefault("EXCHANGE_SECRET_KEYS", base64.urlsafe_b64encode(os.urandom(32)).decode())
        prepare_database()
        from django.contrib.auth import get_user_model

        from copytrading import services

        services.instruments_seed()
        User = get_user_model()
        users = User.objects.bulk_create([User(username=f"bench-{i}", password="!") for i in range(max(SIZES))])
        accounts = link_accounts(users)
        for n in SIZES:
            submitter_alone(url, accounts, n)
            submitter_workers(url, accounts, n)
        # The followers' accounts reuse the double's keys (another user may link the same key).
        leader = services.user_register(username="bench-leader", password="bench-pass-123")
        services.wallet_deposit(user=leader, amount=Decimal("1000000"))
        for n in SIZES:
            end_to_end(url, n, leader)
    finally:
        double.terminate()
        double.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
