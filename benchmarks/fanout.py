"""Fan-out benchmark: one leader market order to N followers, PostgreSQL.

Measures from the leader event's commit to the last follower order committed,
running the engine exactly as the worker does (event_start, then every chunk),
and prints one line per N:
    fanout followers=N median_ms=… p95_ms=… queries_per_chunk=…
"""

import statistics
import sys
import time
from decimal import Decimal

from benchmarks.setup import prepare_database

SIZES = [1000, 10000]
REPETITIONS = 5


def seed(n_followers: int, portfolio):
    """N funded followers with varied sizing models, written set-based (the
    API path is exercised by the tests; here only the fan-out is measured)."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from copytrading import ledger
    from copytrading.models import Account, AccountKind, TransferKind
    from followers.models import Subscription

    User = get_user_model()
    start = User.objects.count()
    with transaction.atomic():
        users = User.objects.bulk_create(
            [User(username=f"bench-{start + i}", password="!") for i in range(n_followers)], batch_size=2000
        )
        accounts = Account.objects.bulk_create(
            [Account(kind=AccountKind.COPY, user=u, currency="USDT", name="copy") for u in users], batch_size=2000
        )
        external = ledger.system_account(AccountKind.EXTERNAL)
        ledger.apply_transfers(
            [
                ledger.TransferSpec(external.pk, a.pk, Decimal("5000"), TransferKind.DEPOSIT, f"bench-fund:{a.pk}")
                for a in accounts
            ]
        )
        subs = []
        for i, (u, a) in enumerate(zip(users, accounts, strict=True)):
            model = ("progressive", "fixed", "adaptive")[i % 3]
            subs.append(
                Subscription(
                    follower=u,
                    portfolio=portfolio,
                    copy_account=a,
                    sizing_model=model,
                    multiplier=Decimal("0.5") if model == "progressive" else None,
                    fixed_notional=Decimal("500") if model == "fixed" else None,
                    risk_factor=Decimal("1") if model == "adaptive" else None,
                    invested=Decimal("5000"),
                )
            )
        Subscription.objects.bulk_create(subs, batch_size=2000)


def fan_out(event_id: int) -> float:
    """Run the whole propagation in this process; return elapsed ms."""
    from copytrading import propagation

    t0 = time.perf_counter()
    for chunk_id in propagation.event_start(event_id):
        propagation.chunk_propagate(chunk_id)
    elapsed = (time.perf_counter() - t0) * 1000
    assert propagation.event_complete(event_id), "event did not complete"
    return elapsed


def queries_in_one_chunk(event_id: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from copytrading import propagation

    chunk_ids = propagation.event_start(event_id)
    with CaptureQueriesContext(connection) as ctx:
        propagation.chunk_propagate(chunk_ids[0])
    count = len(ctx.captured_queries)
    for chunk_id in chunk_ids[1:]:
        propagation.chunk_propagate(chunk_id)
    assert propagation.event_complete(event_id), "event did not complete"
    return count


def main() -> int:
    prepare_database()
    from unittest import mock

    from copytrading import events, services
    from copytrading.models import Execution, Instrument
    from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place

    services.instruments_seed()
    btc = Instrument.objects.get(symbol="BTC/USDT:USDT")
    leader = services.user_register(username="bench-leader", password="bench-pass-123")
    services.wallet_deposit(user=leader, amount=Decimal("1000000"))
    # The engine is driven by hand here; the on-commit dispatch is not wanted.
    with mock.patch.object(events, "dispatch", lambda event_id: None):
        for n in SIZES:
            portfolio = portfolio_create(leader=leader, name=f"bench-{n}")
            portfolio_fund(portfolio=portfolio, amount=Decimal("100000"))
            seed(n, portfolio)
            opens: list[float] = []
            queries = 0
            for rep in range(REPETITIONS):
                services.price_set(instrument=btc, price=Decimal("60000") + rep)
                (event,) = portfolio_order_place(
                    portfolio=portfolio, symbol=btc.symbol, side="buy", quantity=Decimal("0.2"), leverage=10
                )
                if rep == 0:
                    queries = queries_in_one_chunk(event.pk)
                else:
                    opens.append(fan_out(event.pk))
                copied = Execution.objects.filter(event=event, outcome="COPIED").count()
                assert copied == n, f"{copied} of {n} followers copied"
                (close,) = portfolio_order_place(
                    portfolio=portfolio, symbol=btc.symbol, side="sell", quantity=Decimal("0.2"), leverage=10
                )
                fan_out(close.pk)
            opens.sort()
            p95 = opens[min(len(opens) - 1, round(0.95 * (len(opens) - 1)))]
            print(
                f"fanout followers={n} median_ms={statistics.median(opens):.0f} p95_ms={p95:.0f} "
                f"queries_per_chunk={queries}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
