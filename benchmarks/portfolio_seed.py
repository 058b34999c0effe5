"""Many portfolios with a trading history, written set-based (COPY on
PostgreSQL) for the ranking and catalog benchmarks.

Portfolio ``i``: 20 closed margin round trips (an ETH perp long, PnL between
-40 and +60) spread over the last 60 days (35 to 90 days ago for every fifth
portfolio, which the 30-day rule leaves unranked); every fourth also has 4 spot
fills; 3 followers whose copy wallets are in profit or not. Realized PnL is
booked as ledger transfers with the trade's time, as the venue would."""

import random
from datetime import datetime, timedelta
from decimal import Decimal

D = Decimal
POSITION_COLUMNS = [
    "account", "instrument", "side", "quantity", "opened_quantity", "entry_price", "leverage", "margin",
    "status", "realized_pnl", "opened_at", "closed_at",
]  # fmt: skip
ORDER_COLUMNS = ["account", "instrument", "side", "order_type", "quantity", "price", "leverage", "status",
                 "position", "reserved", "created_at"]  # fmt: skip
TRANSFER_COLUMNS = ["debit", "credit", "amount", "kind", "idempotency_key", "ref", "created_at"]


def seed_portfolios(count: int, *, now: datetime, round_trips: int = 20, followers: int = 3) -> list[int]:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from copytrading import bulk, ledger, services
    from copytrading.models import Account, AccountKind, Instrument, Order, Position, Transfer, TransferKind
    from followers.models import Subscription
    from portfolios.models import Portfolio

    services.instruments_seed()
    eth = Instrument.objects.get(symbol="ETH/USDT:USDT")
    btc = Instrument.objects.get(symbol="BTC/USDT")
    User = get_user_model()
    rng = random.Random(7)
    with transaction.atomic():
        leaders = User.objects.bulk_create(
            [User(username=f"leader-{i}", password="!") for i in range(count)], batch_size=5000
        )
        accounts = Account.objects.bulk_create(
            [Account(kind=AccountKind.LEADER_TRADING, user=u, currency="USDT", name="trading") for u in leaders],
            batch_size=5000,
        )
        external = ledger.system_account(AccountKind.EXTERNAL).pk
        venue = ledger.system_account(AccountKind.VENUE).pk
        ledger.apply_transfers(
            [
                ledger.TransferSpec(external, a.pk, D("20000"), TransferKind.LEADER_FUND, f"seed-fund:{a.pk}")
                for a in accounts
            ]
        )
        modes = ("margin", "spot", "all")
        portfolios = Portfolio.objects.bulk_create(
            [
                Portfolio(
                    leader=u,
                    name=f"Book {i}",
                    mode=modes[i % 3],
                    min_investment=D(rng.choice([0, 50, 100, 500, 1000])),
                    profit_share_pct=D(rng.choice([0, 5, 10, 20, 30])),
                    trading_account=a,
                )
                for i, (u, a) in enumerate(zip(leaders, accounts, strict=True))
            ],
            batch_size=5000,
        )
        Transfer.objects.filter(kind=TransferKind.LEADER_FUND).update(created_at=now - timedelta(days=120))

        positions, pnls = [], []
        for i, account in enumerate(accounts):
            oldest, newest = (90, 35) if i % 5 == 0 else (60, 1)
            for _ in range(round_trips):
                closed_at = now - timedelta(days=rng.uniform(newest, oldest))
                pnl = D(rng.randint(-40, 60))
                positions.append((account.pk, eth.pk, "long", D(0), D(1), D(3200), 10, D(0), "closed", pnl,
                                  closed_at - timedelta(hours=3), closed_at))  # fmt: skip
                pnls.append(pnl)
        ids = bulk.insert_rows(Position, POSITION_COLUMNS, positions, returning=True)
        orders, transfers = [], []
        for pk, row, pnl in zip(ids, positions, pnls, strict=True):
            account_id, opened_at, closed_at = row[0], row[10], row[11]
            orders.append((account_id, eth.pk, "buy", "market", D(1), D(3200), 10, "filled", pk, D(0), opened_at))
            orders.append((account_id, eth.pk, "sell", "market", D(1), D(3200) + pnl, 10, "filled", pk, D(0),
                           closed_at))  # fmt: skip
            if pnl:
                debit, credit = (venue, account_id) if pnl > 0 else (account_id, venue)
                transfers.append((debit, credit, abs(pnl), TransferKind.REALIZED_PNL, f"seed-pnl:{pk}",
                                  f"position {pk}", closed_at))  # fmt: skip
        for i, account in enumerate(accounts):
            if i % 4 or i % 5 == 0:  # every fourth, not the idle ones
                continue
            at = now - timedelta(days=1 + i % 20)
            for n, (side, quantity, price) in enumerate(
                (("buy", "0.1", "64000"), ("sell", "0.05", "65000"), ("buy", "0.05", "63000"), ("sell", "0.1", "64500"))
            ):
                orders.append((account.pk, btc.pk, side, "market", D(quantity), D(price), 1, "filled", None, D(0),
                               at + timedelta(minutes=n)))  # fmt: skip
        bulk.insert_rows(Order, ORDER_COLUMNS, orders)
        bulk.insert_rows(Transfer, TRANSFER_COLUMNS, transfers)

        if followers:
            users = User.objects.bulk_create(
                [User(username=f"follower-{i}", password="!") for i in range(count * followers)], batch_size=5000
            )
            wallets = Account.objects.bulk_create(
                [Account(kind=AccountKind.COPY, user=u, currency="USDT", name="copy") for u in users], batch_size=5000
            )
            specs = []
            for w in wallets:
                specs.append(ledger.TransferSpec(external, w.pk, D("1000"), TransferKind.DEPOSIT, f"seed-copy:{w.pk}"))
                pnl = D(rng.randint(-50, 80))
                if pnl > 0:
                    specs.append(ledger.TransferSpec(venue, w.pk, pnl, TransferKind.REALIZED_PNL, f"seed-cp:{w.pk}"))
                elif pnl < 0:
                    specs.append(ledger.TransferSpec(w.pk, venue, -pnl, TransferKind.REALIZED_PNL, f"seed-cp:{w.pk}"))
            ledger.apply_transfers(specs)
            Subscription.objects.bulk_create(
                [
                    Subscription(
                        follower=users[n],
                        portfolio=portfolios[n // followers],
                        copy_account=wallets[n],
                        multiplier=D("0.5"),
                        invested=D("1000"),
                    )
                    for n in range(len(users))
                ],
                batch_size=5000,
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return [p.pk for p in portfolios]
