"""Encryption at rest for linked exchange accounts' credentials.

Fernet (AES-128-CBC + HMAC-SHA256, a random IV per token) under the keys of
``settings.EXCHANGE_SECRET_KEYS``: the first key encrypts, every key decrypts
(``MultiFernet``), so a new key is rolled in first, the rows are re-encrypted
by ``manage.py rotate_exchange_secrets``, and only then is the old key
removed. A token names no key, so "already under the newest key" is found by
decrypting with that key alone."""

import hashlib
import logging
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from copytrading.errors import DomainError

log = logging.getLogger(__name__)


class SecretsNotConfigured(DomainError):
    """Services mode without EXCHANGE_SECRET_KEYS: nothing can be encrypted."""

    def __init__(self) -> None:
        super().__init__(
            "EXCHANGE_SECRETS_NOT_CONFIGURED",
            "Exchange accounts are not available on this server yet.",
            status=503,
        )


class UndecryptableSecret(Exception):
    """A stored token that no configured key opens (a key removed too early)."""


@cache
def _keys(keys: tuple[str, ...]) -> tuple[Fernet, MultiFernet]:
    fernets = [Fernet(key.encode()) for key in keys]
    return fernets[0], MultiFernet(fernets)


def _box() -> tuple[Fernet, MultiFernet]:
    keys = tuple(settings.EXCHANGE_SECRET_KEYS)
    if not keys:
        log.error("EXCHANGE_SECRET_KEYS is not set: exchange accounts cannot be linked (docs/operations.md)")
        raise SecretsNotConfigured()
    if settings.EXCHANGE_SECRET_KEYS_GENERATED:
        _warn_generated()
    return _keys(keys)


@cache
def _warn_generated() -> None:
    log.warning(
        "EXCHANGE_SECRET_KEYS is not set: exchange secrets are encrypted with the key generated into "
        "VAR_DIR/exchange_secret_key on this machine (development only; set EXCHANGE_SECRET_KEYS in production)"
    )


def encrypt(plaintext: str) -> str:
    """A Fernet token (ASCII) for ``plaintext``; the empty string stays empty
    (an absent passphrase)."""
    if plaintext == "":
        return ""
    newest, _ = _box()
    return newest.encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    if token == "":
        return ""
    _, every = _box()
    try:
        return every.decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableSecret("no configured key opens this secret") from None


def is_current(token: str) -> bool:
    """Encrypted under the newest key (or empty: nothing to re-encrypt)."""
    if token == "":
        return True
    newest, _ = _box()
    try:
        newest.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def reencrypt(token: str) -> str:
    """The same plaintext under the newest key."""
    if token == "":
        return ""
    _, every = _box()
    try:
        return every.rotate(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableSecret("no configured key opens this secret") from None


def fingerprint(exchange: str, api_key: str) -> str:
    """What makes "the same key on the same exchange" findable without storing
    the key: SHA-256 of both. An API key is a long random identifier (it
    travels in every request's headers), so its digest reveals nothing a
    guess could confirm; the secret is never hashed."""
    return hashlib.sha256(f"{exchange}\x00{api_key}".encode()).hexdigest()


def mask(api_key: str) -> str:
    """How a key is shown: its first and last four characters (``abcd…wxyz``);
    a short key shows only its last two."""
    if len(api_key) >= 12:
        return f"{api_key[:4]}…{api_key[-4:]}"
    return f"…{api_key[-2:]}"
