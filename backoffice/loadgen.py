"""Followers in volume, written set-based: the benchmarks' and fault tests'
load (``followers_seed_bulk``) and the demo at any size (backoffice/demo.py).

The API path for one follower (user_register, wallet_deposit,
subscription_create) is what the acceptance tests exercise; these write the
same rows and the same ledger transfers, a batch at a time, with a constant
number of queries per batch instead of a dozen per follower:

- ``users_bulk``: the missing users, one password hash for all (PBKDF2 costs
  ~0.5 s a hash on purpose: 10,000 hashes would be over an hour);
- ``main_wallets_fund``: their main wallets, each with a deposit under the
  key ``wallet_deposit`` uses, so either path replays the other's;
- ``subscriptions_bulk``: copy wallets and subscriptions, each funded by one
  transfer from the follower's main wallet (``subscription:<id>:fund``, as
  ``subscription_open``) or, for load, straight from outside.

What they leave out, and why: the "subscribed"/"new subscriber" notifications
(thousands of notes to one leader are noise, not a demo) and the checks the
caller makes once for the whole batch (amounts at or above the minimum,
settings validated by ``portfolios.copy_settings.resolve``). The portfolio's
status, its leader, its follower cap and the main wallets' balances are
checked here, for the batch, under the portfolio's row lock."""

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from copytrading import changes, ledger
from copytrading.errors import Conflict, DomainError, InsufficientFunds
from copytrading.models import Account, AccountKind, Transfer, TransferKind
from fees.services import follower_capacity_validate
from followers.models import Subscription, SubscriptionStatus
from portfolios.locks import lock_portfolio
from portfolios.models import Portfolio, PortfolioStatus

MODELS = ("progressive", "fixed", "adaptive")
BATCH_SIZE = 2000


@functools.lru_cache(maxsize=4)
def _encoded(password: str, hashers: tuple[str, ...]) -> str:
    """One hash per password and process, not per batch: a seed of 10,000
    in batches of 1,000 computed ten (~0.9 s each on a loaded machine).
    Keyed by the hashers too: a hash the configured ones cannot check is no use."""
    return make_password(password)


def users_bulk(
    *, usernames: Sequence[str], password: str | None = None, email_domain: str = ""
) -> tuple[dict[str, int], int]:
    """``({username: user id}, how many were new)`` for ``usernames``,
    creating the missing ones (with ``password``, hashed once, or unusable;
    e-mail ``name@email_domain``)."""
    User = get_user_model()
    existing = dict(User.objects.filter(username__any=list(usernames)).values_list("username", "pk"))
    missing = [name for name in usernames if name not in existing]
    if missing:
        encoded = make_password(None) if password is None else _encoded(password, tuple(settings.PASSWORD_HASHERS))
        created = User.objects.bulk_create(
            [
                User(username=name, password=encoded, email=f"{name}@{email_domain}" if email_domain else "")
                for name in missing
            ],
            batch_size=BATCH_SIZE,
        )
        existing |= {u.username: u.pk for u in created}
    return existing, len(missing)


def main_wallets_fund(*, user_ids: Sequence[int], amount: Decimal, idempotency_key: str) -> int:
    """Open the users' missing main wallets and deposit ``amount`` into each
    (once per key: the key is ``wallet_deposit``'s). Returns the deposits made."""
    user_ids = sorted(set(user_ids))
    have = set(Account.objects.filter(kind=AccountKind.MAIN, user_id__any=user_ids).values_list("user_id", flat=True))
    Account.objects.bulk_create(
        [
            Account(kind=AccountKind.MAIN, user_id=pk, name=f"main:{pk}", currency=settings.PRIMARY_CURRENCY)
            for pk in user_ids
            if pk not in have
        ],
        batch_size=BATCH_SIZE,
    )
    mains = dict(Account.objects.filter(kind=AccountKind.MAIN, user_id__any=user_ids).values_list("user_id", "pk"))
    keys = {pk: f"deposit:{pk}:{idempotency_key}" for pk in user_ids}
    stored = Transfer.objects.filter(idempotency_key__any=list(keys.values()))
    done = set(stored.values_list("idempotency_key", flat=True))
    todo = [pk for pk in user_ids if keys[pk] not in done]
    if not todo:
        return 0
    external = ledger.system_account(AccountKind.EXTERNAL)
    ledger.lock_balances([external.pk, *(mains[pk] for pk in todo)])
    return ledger.apply_transfers(
        ledger.TransferSpec(external.pk, mains[pk], amount, TransferKind.DEPOSIT, keys[pk], "paper deposit")
        for pk in todo
    )


@dataclass(frozen=True)
class NewSubscription:
    """One follower's copy of the portfolio: ``amount`` moves into a new copy
    wallet; ``settings`` are the subscription's copy settings, validated."""

    follower_id: int
    amount: Decimal
    settings: dict


def subscriptions_bulk(
    *,
    portfolio: Portfolio,
    rows: Sequence[NewSubscription],
    from_main: bool = True,
    capped: bool = True,
    template_ref: str = "",
) -> list[int]:
    """Open the subscriptions (one per follower; the caller leaves out the
    followers who already have one). ``from_main``: funded from each
    follower's main wallet, refused if any cannot pay (nothing written);
    otherwise deposited from outside (load). ``capped``: refused past the
    leader's follower cap, as ``subscription_open`` would refuse the first
    follower past it. Returns the subscription ids."""
    if not rows:
        return []
    portfolio = lock_portfolio(portfolio.pk)  # one batch at a time takes the slots
    if portfolio.status != PortfolioStatus.ACTIVE:
        raise Conflict("PORTFOLIO_NOT_ACTIVE", "The portfolio does not take new followers.", field="portfolio")
    if any(r.follower_id == portfolio.leader_id for r in rows):
        raise DomainError("OWN_PORTFOLIO", "You cannot copy your own portfolio.", field="portfolio")
    if capped:
        live = Subscription.objects.filter(portfolio=portfolio).exclude(status=SubscriptionStatus.ENDED).count()
        follower_capacity_validate(leader=portfolio.leader, current_followers=live + len(rows) - 1)

    follower_ids = [r.follower_id for r in rows]
    if from_main:
        mains = dict(
            Account.objects.filter(kind=AccountKind.MAIN, user_id__any=follower_ids).values_list("user_id", "pk")
        )
        balances = ledger.lock_balances(mains.values())
        asked: dict[int, Decimal] = defaultdict(Decimal)
        for r in rows:
            asked[r.follower_id] += r.amount

        def free(user_id: int) -> Decimal:
            balance, locked = balances[mains[user_id]]
            return balance - locked

        short = [pk for pk, amount in asked.items() if pk not in mains or free(pk) < amount]
        if short:
            raise InsufficientFunds(
                f"{len(short)} followers' main wallets cannot fund their copy wallets (user {short[0]} first)."
            )
    wallets = Account.objects.bulk_create(
        [
            Account(kind=AccountKind.COPY, user_id=pk, name=f"copy:{portfolio.pk}", currency=settings.PRIMARY_CURRENCY)
            for pk in follower_ids
        ],
        batch_size=BATCH_SIZE,
    )
    subscriptions = Subscription.objects.bulk_create(
        [
            Subscription(
                follower_id=r.follower_id,
                portfolio=portfolio,
                copy_account=wallet,
                invested=r.amount,
                agreed_profit_share_pct=portfolio.profit_share_pct,
                template_ref=template_ref,
                **r.settings,
            )
            for r, wallet in zip(rows, wallets, strict=True)
        ],
        batch_size=BATCH_SIZE,
    )
    if from_main:
        specs = [
            ledger.TransferSpec(
                mains[r.follower_id],
                s.copy_account_id,
                r.amount,
                TransferKind.COPY_FUND,
                f"subscription:{s.pk}:fund",
                f"subscription {s.pk}",
            )
            for r, s in zip(rows, subscriptions, strict=True)
        ]
    else:
        external = ledger.system_account(AccountKind.EXTERNAL)
        ledger.lock_accounts([external.pk])
        specs = [
            ledger.TransferSpec(external.pk, s.copy_account_id, r.amount, TransferKind.DEPOSIT, f"load-fund:{w.pk}")
            for r, s, w in zip(rows, subscriptions, wallets, strict=True)
        ]
    ledger.apply_transfers(specs)
    changes.touch(users=[*follower_ids, portfolio.leader_id], portfolios=[portfolio.pk])
    return [s.pk for s in subscriptions]


def _load_settings(i: int) -> dict:
    model = MODELS[i % len(MODELS)]
    return {
        "sizing_model": model,
        "multiplier": Decimal("0.5") if model == "progressive" else None,
        "fixed_notional": Decimal("500") if model == "fixed" else None,
        "risk_factor": Decimal("1") if model == "adaptive" else None,
    }


@transaction.atomic
def followers_seed_bulk(*, portfolio: Portfolio, count: int, funding: Decimal = Decimal("5000")) -> list[int]:
    """``count`` new followers of ``portfolio`` (users ``load-<n>``) with copy
    wallets funded through the ledger (balanced), sizing models mixed;
    returns the subscription ids. Load: the follower cap does not apply (the
    benchmarks put 10,000 followers on one portfolio)."""
    User = get_user_model()
    start = User.objects.count()
    ids, _ = users_bulk(usernames=[f"load-{start + i}" for i in range(count)])
    rows = [NewSubscription(ids[f"load-{start + i}"], funding, _load_settings(i)) for i in range(count)]
    return subscriptions_bulk(portfolio=portfolio, rows=rows, from_main=False, capped=False)
