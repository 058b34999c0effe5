"""Load generation for benchmarks and fault tests: thousands of funded
followers written set-based. The API path for one follower is what the
acceptance tests exercise; this only makes volume cheap to create."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from copytrading import ledger
from copytrading.models import Account, AccountKind, TransferKind
from followers.models import Subscription
from portfolios.models import Portfolio

MODELS = ("progressive", "fixed", "adaptive")


@transaction.atomic
def followers_seed_bulk(*, portfolio: Portfolio, count: int, funding: Decimal = Decimal("5000")) -> list[int]:
    """``count`` followers of ``portfolio`` with copy wallets funded through the
    ledger (balanced), sizing models mixed; returns the subscription ids."""
    User = get_user_model()
    start = User.objects.count()
    users = User.objects.bulk_create(
        [User(username=f"load-{start + i}", password="!") for i in range(count)], batch_size=2000
    )
    wallets = Account.objects.bulk_create(
        [Account(kind=AccountKind.COPY, user=u, currency="USDT", name=f"copy:{portfolio.pk}") for u in users],
        batch_size=2000,
    )
    external = ledger.system_account(AccountKind.EXTERNAL)
    ledger.apply_transfers(
        [ledger.TransferSpec(external.pk, w.pk, funding, TransferKind.DEPOSIT, f"load-fund:{w.pk}") for w in wallets]
    )
    subscriptions = []
    for i, (user, wallet) in enumerate(zip(users, wallets, strict=True)):
        model = MODELS[i % len(MODELS)]
        subscriptions.append(
            Subscription(
                follower=user,
                portfolio=portfolio,
                copy_account=wallet,
                sizing_model=model,
                multiplier=Decimal("0.5") if model == "progressive" else None,
                fixed_notional=Decimal("500") if model == "fixed" else None,
                risk_factor=Decimal("1") if model == "adaptive" else None,
                invested=funding,
                agreed_profit_share_pct=portfolio.profit_share_pct,
            )
        )
    return [s.pk for s in Subscription.objects.bulk_create(subscriptions, batch_size=2000)]
