"""Helpers of the submitter's tests: accounts linked to keys on the exchange
double, exchange orders made directly (as the engine's chunk commits them),
settings that keep retries quick."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from copytrading.exchanges import crypto, sending
from copytrading.exchanges.models import ExchangeAccount, ExchangeAccountStatus, ExchangeOrder
from tests.exchange_double.server import ExchangeDouble
from tests.factories import UserFactory

SYMBOL = "BTC/USDT:USDT"  # BTCUSDT on the double: step 0.001, min notional 100 at 64,000
QUANTITY = Decimal("0.002")


@pytest.fixture
def submit_settings(exchange_settings):
    """ccxt pointed at the double; retries quick (a lost answer is looked up
    after 1 s, the request's validity window, instead of 5 s)."""
    s = exchange_settings
    s.EXCHANGE_SUBMIT_TIMEOUT_SECONDS = 0.5
    s.EXCHANGE_ORDER_RECV_WINDOW_SECONDS = 1.0
    s.EXCHANGE_SUBMIT_BACKOFF_SECONDS = 0.05
    s.EXCHANGE_SUBMIT_MAX_BACKOFF_SECONDS = 0.4
    s.EXCHANGE_SUBMIT_LEASE_SECONDS = 10.0
    s.EXCHANGE_SUBMIT_BUDGET_SECONDS = 60.0
    s.EXCHANGE_SUBMIT_CONCURRENCY = 16
    s.EXCHANGE_ACCOUNT_CONCURRENCY = 2
    with sending._cooldown_lock:
        sending._cooldown_until.clear()
    yield s
    sending.forget_markets()


def link_accounts(double: ExchangeDouble, count: int, *, prefix: str = "t", status=ExchangeAccountStatus.VALID):
    """``count`` users, each with a key on the double (1,000,000 USDT) and the
    linked account row the link service would have stored."""
    now = timezone.now()
    accounts = []
    for index in range(count):
        api_key, secret = f"{prefix}-key-{index:05d}", f"{prefix}-secret-{index:05d}"
        double.state.add_account(api_key, secret, balances={"USDT": Decimal("1000000")})
        accounts.append(
            ExchangeAccount(
                user=UserFactory(username=f"{prefix}-trader-{index}"),
                exchange="binanceusdm",
                label="futures",
                api_key_encrypted=crypto.encrypt(api_key),
                secret_encrypted=crypto.encrypt(secret),
                passphrase_encrypted=crypto.encrypt(""),
                api_key_hint=crypto.mask(api_key),
                api_key_fingerprint=crypto.fingerprint("binanceusdm", api_key),
                status=status,
                permissions=None,
                created_at=now,
                last_validated_at=now,
            )
        )
    return ExchangeAccount.objects.bulk_create(accounts)


def make_orders(accounts, per_account: int = 1, *, prefix: str = "ct-t", **fields) -> list[ExchangeOrder]:
    """``per_account`` pending market buys per account, as a chunk commits them."""
    now = timezone.now()
    rows = [
        ExchangeOrder(
            exchange_account=account,
            client_order_id=f"{prefix}{account.pk}-{n}",
            symbol=fields.get("symbol", SYMBOL),
            side=fields.get("side", "buy"),
            quantity=fields.get("quantity", QUANTITY),
            price=fields.get("price"),
            reduce_only=fields.get("reduce_only", False),
            decided_at=now,
        )
        for account in accounts
        for n in range(per_account)
    ]
    return ExchangeOrder.objects.bulk_create(rows)


def orders_on_double(double: ExchangeDouble):
    """Client order id → how many orders the double holds with it."""
    return double.state.client_order_ids()
