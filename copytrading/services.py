"""Writes of the core that are not trading: wallets, market data, users."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from copytrading import ledger, matching
from copytrading.errors import DomainError
from copytrading.models import Account, AccountKind, Instrument, MarkFlag, Product, Transfer, TransferKind
from copytrading.money import Q8, round_to_tick
from copytrading.outages import after_commit

User = get_user_model()


@transaction.atomic
def user_register(*, username: str, password: str, email: str = "") -> "User":
    try:
        validate_password(password)
    except ValidationError as exc:
        raise DomainError("WEAK_PASSWORD", " ".join(exc.messages), field="password") from None
    if User.objects.filter(username__iexact=username).exists():
        raise DomainError("USERNAME_TAKEN", "This username is taken.", field="username", status=409)
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password, email=email)
    except IntegrityError:
        raise DomainError("USERNAME_TAKEN", "This username is taken.", field="username", status=409) from None
    ledger.main_account_for(user)
    return user


@transaction.atomic
def wallet_deposit(*, user, amount: Decimal, idempotency_key: str | None = None) -> tuple[Transfer, bool]:
    """A paper deposit into the user's main wallet (from the outside world)."""
    if amount > settings.PAPER_MAX_DEPOSIT:
        raise DomainError(
            "DEPOSIT_TOO_LARGE", f"A paper deposit is at most {settings.PAPER_MAX_DEPOSIT}.", field="amount"
        )
    main = ledger.main_account_for(user)
    external = ledger.system_account(AccountKind.EXTERNAL)
    key = f"deposit:{user.pk}:{idempotency_key or uuid.uuid4().hex}"
    return ledger.transfer(
        debit_id=external.pk, credit_id=main.pk, amount=amount, kind=TransferKind.DEPOSIT, key=key, ref="paper deposit"
    )


@dataclass(frozen=True)
class Mark:
    """A mark price as committed: what price listeners receive."""

    instrument_id: int
    symbol: str
    price: Decimal
    at: datetime


PriceListener = Callable[[Mark], None]
_price_listeners: list[PriceListener] = []


def register_price_listener(listener: PriceListener) -> None:
    """Have ``listener(mark)`` called after the commit of every mark written by
    ``price_set`` (the live stream broadcasts it; a listener that raises is
    logged and never undoes the price). Registering twice is a no-op."""
    if listener not in _price_listeners:
        _price_listeners.append(listener)


@transaction.atomic
def price_set(
    *, instrument: Instrument, price: Decimal, at: datetime | None = None, mark_flag: str = MarkFlag.NONE
) -> Instrument:
    """Set the mark price (staff API, simulator, feeds), rounded to the tick,
    and match at it in the same transaction: crossing limit orders fill,
    TP/SL and liquidations trigger (see copytrading.matching). A feed passes
    ``mark_flag`` for a mark it does not trust (a jump beyond its sanity band):
    the mark is kept and matched, but liquidations do not act at it."""
    if not price.is_finite() or price <= 0:
        raise DomainError("INVALID_PRICE", "The price must be greater than zero.", field="price")
    rounded = round_to_tick(price, instrument.price_tick, up=False)
    if rounded <= 0:
        raise DomainError("INVALID_PRICE", "The price is below one tick.", field="price")
    instrument.mark_price = rounded.quantize(Q8)
    instrument.price_updated_at = at or timezone.now()
    instrument.mark_flag = mark_flag
    # The update row-locks the instrument: matching of one market is serialized.
    instrument.save(update_fields=["mark_price", "price_updated_at", "mark_flag"])
    matching.match_instrument(instrument)
    mark = Mark(instrument.pk, instrument.symbol, instrument.mark_price, instrument.price_updated_at)
    for listener in _price_listeners:
        after_commit(lambda listener=listener: listener(mark), what=f"price listener for {mark.symbol}")
    return instrument


def instruments_flag_marks(*, instrument_ids: list[int], mark_flag: str) -> int:
    """Flag the current marks of these instruments (a feed that lost its
    exchange: ``STALE``) so liquidations stop acting at them until a fresh
    mark arrives through ``price_set``; returns how many changed."""
    return Instrument.objects.filter(pk__in=instrument_ids).exclude(mark_flag=mark_flag).update(mark_flag=mark_flag)


# symbol, product, base, quote, step, min qty, max qty, tick, min notional, max leverage, price
DEFAULT_INSTRUMENTS = [
    ("BTC/USDT:USDT", Product.MARGIN, "BTC", "USDT", "0.001", "0.001", "100", "0.1", "5", 100, "64000"),
    ("ETH/USDT:USDT", Product.MARGIN, "ETH", "USDT", "0.01", "0.01", "1000", "0.01", "5", 100, "3200"),
    ("SOL/USDT:USDT", Product.MARGIN, "SOL", "USDT", "0.1", "0.1", "50000", "0.001", "5", 50, "150"),
    ("AVAX/USDT:USDT", Product.MARGIN, "AVAX", "USDT", "0.1", "0.1", "50000", "0.001", "5", 50, "35"),
    ("BTC/USDT", Product.SPOT, "BTC", "USDT", "0.00001", "0.00001", "9000", "0.01", "5", 1, "64000"),
    ("ETH/USDT", Product.SPOT, "ETH", "USDT", "0.0001", "0.0001", "9000", "0.01", "5", 1, "3200"),
    ("SOL/USDT", Product.SPOT, "SOL", "USDT", "0.001", "0.001", "90000", "0.01", "5", 1, "150"),
    ("AVAX/USDT", Product.SPOT, "AVAX", "USDT", "0.001", "0.001", "90000", "0.001", "5", 1, "35"),
    ("ETH/BTC", Product.SPOT, "ETH", "BTC", "0.0001", "0.001", "100000", "0.00001", "0.0001", 1, "0.05"),
    ("BTC/EUR", Product.SPOT, "BTC", "EUR", "0.00001", "0.00001", "9000", "0.01", "5", 1, "59000"),
]


@transaction.atomic
def instruments_seed() -> int:
    """Create the default instruments (idempotent); returns how many were new."""
    created = 0
    now = timezone.now()
    for symbol, product, base, quote, step, mn, mx, tick, notional, lev, price in DEFAULT_INSTRUMENTS:
        _, was_created = Instrument.objects.get_or_create(
            symbol=symbol,
            defaults={
                "product": product,
                "base": base,
                "quote": quote,
                "qty_step": Decimal(step),
                "min_qty": Decimal(mn),
                "max_qty": Decimal(mx),
                "price_tick": Decimal(tick),
                "min_notional": Decimal(notional),
                "max_leverage": lev,
                "mark_price": Decimal(price),
                "price_updated_at": now,
            },
        )
        created += was_created
    return created


def account_of(user, account_id: int) -> Account | None:
    return Account.objects.filter(pk=account_id, user=user).first()
