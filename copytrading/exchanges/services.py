"""Every write of linked exchange accounts: link (validated by the exchange
first, nothing stored on any failure), re-validate, delete (credentials
wiped first) and the re-encryption under the newest key.

The exchange is asked outside any transaction: no row or connection is held
while a remote server takes its time."""

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from copytrading import audit
from copytrading.auth.services import throttle_count
from copytrading.errors import Conflict, DomainError, NotFound
from copytrading.exchanges import crypto
from copytrading.exchanges.accounts import Credentials, key_can_withdraw, probe, required_credentials
from copytrading.exchanges.models import ExchangeAccount, ExchangeAccountStatus
from copytrading.exchanges.selectors import exchange_account_of

log = logging.getLogger(__name__)

MAX_ACCOUNTS_PER_USER = 20
# Rows re-encrypted per transaction by the rotation.
ROTATION_BATCH = 500


def _already_linked(exchange: str) -> Conflict:
    return Conflict(
        "EXCHANGE_ACCOUNT_EXISTS", f"This {exchange} API key is already linked to your account.", field="api_key"
    )


def _count_exchange_check(user) -> None:
    """Every ask of an exchange on a user's behalf counts (429
    EXCHANGE_CHECKS_THROTTLED beyond the limit): they all leave from this
    server's address, which an exchange bans as a whole when it is flooded."""
    throttle_count(
        limits={f"exchange-check:{user.pk}": settings.EXCHANGE_ACCOUNT_CHECKS_PER_MINUTE},
        window_seconds=60,
        lockout_seconds=60,
        code="EXCHANGE_CHECKS_THROTTLED",
        detail="Too many exchange key checks; retry in a minute.",
    )


def _check_credentials(exchange: str, passphrase: str) -> None:
    needed = required_credentials(exchange)
    if "passphrase" in needed and not passphrase:
        raise DomainError("PASSPHRASE_REQUIRED", f"{exchange} keys need their passphrase.", field="passphrase")
    if "passphrase" not in needed and passphrase:
        raise DomainError("PASSPHRASE_NOT_USED", f"{exchange} keys have no passphrase.", field="passphrase")


@sensitive_variables("api_key", "secret", "passphrase", "credentials")
def exchange_account_link(
    *, user, exchange: str, label: str, api_key: str, secret: str, passphrase: str = "", now: datetime | None = None
) -> ExchangeAccount:
    """Link ``user``'s key on ``exchange`` once the exchange has shown it
    works (balances read) and cannot withdraw (where the exchange says)."""
    _check_credentials(exchange, passphrase)
    fingerprint = crypto.fingerprint(exchange, api_key)
    mine = ExchangeAccount.objects.filter(user=user)
    if mine.filter(exchange=exchange, api_key_fingerprint=fingerprint).exists():
        raise _already_linked(exchange)
    if mine.count() >= MAX_ACCOUNTS_PER_USER:
        raise Conflict(
            "EXCHANGE_ACCOUNT_LIMIT", f"At most {MAX_ACCOUNTS_PER_USER} exchange accounts per user; delete one first."
        )
    # Encrypted before the exchange is asked: a server without keys refuses at once.
    encrypted = [crypto.encrypt(value) for value in (api_key, secret, passphrase)]
    credentials = Credentials(api_key=api_key, secret=secret, passphrase=passphrase)
    _count_exchange_check(user)
    found = probe(exchange, credentials)
    if found.can_withdraw:
        raise key_can_withdraw(exchange)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return ExchangeAccount.objects.create(
                user=user,
                exchange=exchange,
                label=label,
                api_key_encrypted=encrypted[0],
                secret_encrypted=encrypted[1],
                passphrase_encrypted=encrypted[2],
                api_key_hint=crypto.mask(api_key),
                api_key_fingerprint=fingerprint,
                status=ExchangeAccountStatus.VALID,
                permissions=found.permissions,
                created_at=now,
                last_validated_at=now,
            )
    except IntegrityError:
        # The same key linked by a concurrent request while the exchange was asked.
        raise _already_linked(exchange) from None


def credentials_of(account: ExchangeAccount) -> Credentials:
    """The decrypted credentials (for a call to the exchange, never for an answer)."""
    try:
        return Credentials(
            api_key=crypto.decrypt(account.api_key_encrypted),
            secret=crypto.decrypt(account.secret_encrypted),
            passphrase=crypto.decrypt(account.passphrase_encrypted),
        )
    except crypto.UndecryptableSecret:
        log.error("exchange account #%s: no key in EXCHANGE_SECRET_KEYS opens its secrets", account.pk)
        raise DomainError(
            "EXCHANGE_SECRETS_UNREADABLE",
            "This account's credentials cannot be read on this server right now.",
            status=503,
        ) from None


@sensitive_variables("credentials")
def exchange_account_validate(*, user, account_id: int, now: datetime | None = None) -> ExchangeAccount:
    """Ask the exchange again and record what it said: ``valid``,
    ``auth_failed`` (the key was revoked or changed) or ``can_withdraw``
    (a withdrawal permission was added). An exchange that does not answer
    records nothing (503)."""
    account = exchange_account_of(user, account_id)
    status, permissions = ExchangeAccountStatus.VALID, account.permissions
    credentials = credentials_of(account)
    _count_exchange_check(user)
    try:
        found = probe(account.exchange, credentials)
    except DomainError as exc:
        if exc.code != "EXCHANGE_AUTH_FAILED":
            raise
        status = ExchangeAccountStatus.AUTH_FAILED
    else:
        permissions = found.permissions
        if found.can_withdraw:
            status = ExchangeAccountStatus.CAN_WITHDRAW
    now = now or timezone.now()
    with transaction.atomic():
        updated = ExchangeAccount.objects.filter(pk=account.pk, user=user).update(
            status=status, permissions=permissions, last_validated_at=now
        )
        if not updated:  # deleted while the exchange was asked
            raise NotFound("exchange account")
        audit.record(
            actor=user,
            action="validate",
            target=account,
            changes={"status": (account.status, status), "permissions": (account.permissions, permissions)},
        )
    account.status, account.permissions, account.last_validated_at = status, permissions, now
    return account


@transaction.atomic
def exchange_account_delete(*, account_id: int, user=None) -> None:
    """Delete an account (``user``'s own; staff pass none), its credentials
    overwritten first: no later read of the row — a signal, an audit copy,
    a read in the same transaction — can find them. (Old row versions stay
    in PostgreSQL's pages and WAL until vacuumed and recycled, encrypted:
    docs/decisions.md.)"""
    rows = ExchangeAccount.objects.filter(pk=account_id)
    if user is not None:
        rows = rows.filter(user=user)
    wiped = rows.update(api_key_encrypted="", secret_encrypted="", passphrase_encrypted="")
    if not wiped:
        raise NotFound("exchange account")
    rows.delete()


@dataclass
class RotationReport:
    reencrypted: int = 0  # rows whose secrets were (or, dry run, would be) re-encrypted
    current: int = 0  # rows already under the newest key
    unreadable: list[int] = field(default_factory=list)  # ids no configured key opens


SECRET_FIELDS = ("api_key_encrypted", "secret_encrypted", "passphrase_encrypted")


def exchange_secrets_rotate(*, dry_run: bool = False) -> RotationReport:
    """Re-encrypt every account's secrets under the newest key (the first of
    EXCHANGE_SECRET_KEYS). Idempotent: a second run re-encrypts nothing. In
    batches of ROTATION_BATCH rows, each locked (pk order) in its own
    transaction, so links and deletes wait at most one batch."""
    report = RotationReport()
    last_id = 0
    while True:
        with transaction.atomic():
            batch = list(
                ExchangeAccount.objects.select_for_update()
                .filter(pk__gt=last_id)
                .order_by("pk")
                .only("pk", *SECRET_FIELDS)[:ROTATION_BATCH]
            )
            if not batch:
                return report
            last_id = batch[-1].pk
            changed = []
            for account in batch:
                tokens = [getattr(account, name) for name in SECRET_FIELDS]
                if all(crypto.is_current(token) for token in tokens):
                    report.current += 1
                    continue
                try:
                    fresh = [crypto.reencrypt(token) for token in tokens]
                except crypto.UndecryptableSecret:
                    report.unreadable.append(account.pk)
                    continue
                for name, token in zip(SECRET_FIELDS, fresh, strict=True):
                    setattr(account, name, token)
                changed.append(account)
            report.reencrypted += len(changed)
            if changed and not dry_run:
                ExchangeAccount.objects.bulk_update(changed, SECRET_FIELDS)
