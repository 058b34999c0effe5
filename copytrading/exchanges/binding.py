"""Binding a ledger account to a linked exchange account: a follower's copy
wallet (at subscribe) then copies onto the exchange (copytrading.venues).

The wallet's funded amount is the allocation: what the copy may use of the
exchange balance. Two halves, so that no exchange is asked while a
transaction holds locks:
- ``exchange_binding_precheck`` (before the subscribe's transaction): the
  account is the user's own (404), valid, not bound to another open account
  (409), and the exchange's free balance covers the allocation (reads the
  balance; an exchange that does not answer is 503 EXCHANGE_UNAVAILABLE,
  and nothing is stored);
- ``exchange_account_bind`` (inside it): the same checks without the
  exchange, under the row lock, then the binding; the unique index of open
  bound accounts settles a race (409)."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

import ccxt
from django.conf import settings
from django.db import IntegrityError, transaction

from copytrading.errors import Conflict, DomainError
from copytrading.exchanges import redact
from copytrading.exchanges.accounts import ExchangeUnavailable, account_client, exchange_auth_failed, exchange_error
from copytrading.exchanges.models import ExchangeAccount, ExchangeAccountStatus
from copytrading.exchanges.selectors import exchange_account_of
from copytrading.exchanges.services import credentials_of
from copytrading.models import Account

log = logging.getLogger(__name__)

FIELD = "exchange_account_id"


def _usable(user, exchange_account_id: int) -> ExchangeAccount:
    account = exchange_account_of(user, exchange_account_id)  # 404 if not the user's
    if account.status != ExchangeAccountStatus.VALID:
        raise Conflict(
            "EXCHANGE_ACCOUNT_NOT_VALID",
            "This exchange account cannot be copied onto (its key was refused or may withdraw); re-validate it.",
            field=FIELD,
        )
    if Account.objects.filter(exchange_account=account, is_closed=False).exists():
        raise _in_use()
    return account


def _in_use() -> Conflict:
    return Conflict(
        "EXCHANGE_ACCOUNT_IN_USE", "This exchange account already carries another copy or portfolio.", field=FIELD
    )


def exchange_free_balance(account: ExchangeAccount, asset: str) -> Decimal:
    """The exchange's free balance of ``asset`` on the account (one
    ``fetch_balance``). Raises 503 EXCHANGE_UNAVAILABLE, 400
    EXCHANGE_AUTH_FAILED or 502 EXCHANGE_ERROR."""
    credentials = credentials_of(account)
    with redact.holding(credentials.api_key, credentials.secret, credentials.passphrase):
        client = account_client(account.exchange, credentials)
        try:
            balance = client.fetch_balance()
        except ccxt.AuthenticationError:
            raise exchange_auth_failed(account.exchange) from None
        except ccxt.NetworkError as exc:
            log.warning("balance read on %s failed: %s", account.exchange, type(exc).__name__)
            raise ExchangeUnavailable(account.exchange) from None
        except ccxt.BaseError as exc:
            log.warning("balance read on %s failed: %s", account.exchange, type(exc).__name__)
            raise exchange_error(account.exchange) from None
        finally:
            session = getattr(client, "session", None)
            if session is not None:
                session.close()
    free = (balance.get(asset) or {}).get("free")
    if free is None:
        free = (balance.get("free") or {}).get(asset)
    try:
        return Decimal(str(free)) if free is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def exchange_binding_precheck(*, user, exchange_account_id: int, allocation: Decimal) -> ExchangeAccount:
    """Everything that can refuse a binding, the exchange's balance included;
    call it outside any transaction."""
    account = _usable(user, exchange_account_id)
    free = exchange_free_balance(account, settings.PRIMARY_CURRENCY)
    if allocation > free:
        raise DomainError(
            "ALLOCATION_ABOVE_EXCHANGE_BALANCE",
            f"The exchange account has {free.normalize()} {settings.PRIMARY_CURRENCY} free; "
            f"{allocation} was asked for.",
            field="amount",
        )
    return account


def exchange_account_bind(*, user, account: Account, exchange_account_id: int) -> None:
    """Bind ``account`` (a new copy wallet, in the caller's transaction) to
    the user's exchange account."""
    exchange_account = _usable(user, exchange_account_id)
    try:
        with transaction.atomic():
            Account.objects.filter(pk=account.pk).update(exchange_account=exchange_account)
    except IntegrityError:
        raise _in_use() from None
    account.exchange_account = exchange_account
