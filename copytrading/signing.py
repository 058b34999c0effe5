"""Signatures of the signal webhook. Pure: no Django.

The sender signs ``f"{timestamp}.".encode() + body`` with HMAC-SHA256 under
the portfolio's secret and sends the timestamp (unix seconds) and the hex
digest in two headers. Signing the timestamp with the body means a captured
request cannot be replayed with a fresh timestamp; the tolerance bounds how
long a captured request stays valid at all, and the inbox's message id makes
a replay inside that window a no-op.
"""

import hashlib
import hmac
import re

from copytrading.errors import DomainError

TIMESTAMP_HEADER = "X-Signature-Timestamp"
SIGNATURE_HEADER = "X-Signature"
TOLERANCE_SECONDS = 300

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class SignatureError(DomainError):
    status = 401


def signature_compute(*, secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_verify(
    *,
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """Check a request's signature, then its age; return the timestamp.

    The signature is checked first so that SIGNATURE_EXPIRED is only ever
    told to someone who holds the secret (a sender with a wrong clock), and
    an unsigned request learns nothing but INVALID_SIGNATURE."""
    if not secret:
        # An empty key would make every signature computable by anyone.
        raise SignatureError("INVALID_SIGNATURE", "The request signature is missing or wrong.")
    timestamp = (timestamp or "").strip()
    signature = (signature or "").strip().lower()
    if not _TIMESTAMP.fullmatch(timestamp) or not _HEX_DIGEST.fullmatch(signature):
        raise SignatureError("INVALID_SIGNATURE", "The request signature is missing or wrong.")
    expected = signature_compute(secret=secret, timestamp=timestamp, body=body)
    # Constant time: the comparison must not tell how many leading characters matched.
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError("INVALID_SIGNATURE", "The request signature is missing or wrong.")
    sent_at = int(timestamp)
    if abs(now - sent_at) > tolerance:
        raise SignatureError(
            "SIGNATURE_EXPIRED",
            f"The signature timestamp is more than {tolerance} seconds away from the server's clock.",
        )
    return sent_at
