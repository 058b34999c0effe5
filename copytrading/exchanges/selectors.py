"""Reads of linked exchange accounts. A user's accounts are only ever read
through these: another user's are simply not there (404)."""

from django.db.models import QuerySet

from copytrading.errors import NotFound
from copytrading.exchanges.models import ExchangeAccount


def exchange_accounts_of(user) -> QuerySet[ExchangeAccount]:
    return ExchangeAccount.objects.filter(user=user)


def exchange_account_of(user, account_id: int) -> ExchangeAccount:
    account = exchange_accounts_of(user).filter(pk=account_id).first()
    if account is None:
        raise NotFound("exchange account")
    return account
