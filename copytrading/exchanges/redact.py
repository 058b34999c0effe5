"""Keeps credentials out of the logs.

ccxt logs every request's headers and body at DEBUG whatever its ``verbose``
says (``Exchange.fetch``: the API key travels in a header, OKX's passphrase
too), and urllib3 logs URLs at DEBUG (some exchanges sign in the query
string). While a client holds credentials (``holding``), every record of
those loggers has them replaced by ``***`` before any handler sees it; the
filter sits on the loggers themselves, so every handler (pytest's caplog
included) gets the redacted record. ``scrub`` does the same to an exception's
text before it is logged."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The loggers that may see a request: ccxt's own (the client is given this
# one, see copytrading/exchanges/accounts.py) and urllib3's (requests).
WIRE_LOGGER = "copytrading.exchanges.wire"
HTTP_LOGGERS = ("urllib3.connectionpool", "ccxt.base.exchange")

_held: ContextVar[tuple[str, ...]] = ContextVar("exchange_credentials", default=())

# Shorter values would redact half of every log line; no real key is this short.
MIN_REDACTED = 6


def scrub(text: str, secrets: tuple[str, ...] | None = None) -> str:
    for secret in _held.get() if secrets is None else secrets:
        if len(secret) >= MIN_REDACTED:
            text = text.replace(secret, "***")
    return text


@contextmanager
def holding(*secrets: str) -> Iterator[None]:
    token = _held.set(_held.get() + tuple(s for s in secrets if s))
    try:
        yield
    finally:
        _held.reset(token)


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _held.get():
            record.msg = scrub(record.getMessage())
            record.args = None
            if record.exc_info:  # a traceback's last line quotes the exception's text
                record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


def install() -> None:
    """Idempotent; called by the app's ready()."""
    for name in (WIRE_LOGGER, *HTTP_LOGGERS):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
