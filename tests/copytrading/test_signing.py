"""Signal webhook signatures (pure: no database)."""

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copytrading.signing import SignatureError, signature_compute, signature_verify

SECRET = "whsec_" + "ab" * 32
NOW = 1_750_000_000
BODY = b'{"id":"sig-1","symbol":"BTC/USDT:USDT","side":"buy","quantity":"0.1","leverage":5,"type":"market"}'


def sign(body: bytes = BODY, timestamp: int = NOW, secret: str = SECRET) -> tuple[str, str]:
    return str(timestamp), signature_compute(secret=secret, timestamp=str(timestamp), body=body)


def verify(timestamp, signature, body: bytes = BODY, secret: str = SECRET, now: float = NOW) -> int:
    return signature_verify(secret=secret, timestamp=timestamp, signature=signature, body=body, now=now)


def code_of(call) -> str:
    with pytest.raises(SignatureError) as caught:
        call()
    assert caught.value.status == 401
    return caught.value.code


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    # Written out independently of signature_compute: this is the contract senders implement.
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign() == (str(NOW), expected)


def test_valid_signature_returns_the_timestamp():
    assert verify(*sign()) == NOW


def test_uppercase_hex_and_surrounding_spaces_are_accepted():
    timestamp, signature = sign()
    assert verify(f" {timestamp} ", f" {signature.upper()} ") == NOW


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        (None, None),
        (str(NOW), None),
        (None, "0" * 64),
        ("", ""),
        (str(NOW), "not-hex"),
        (str(NOW), "0" * 63),
        ("12.5", "0" * 64),
        ("-5", "0" * 64),
        ("１２３", "0" * 64),  # non-ASCII digits  # noqa: RUF001
    ],
)
def test_missing_or_malformed_headers_are_invalid(timestamp, signature):
    assert code_of(lambda: verify(timestamp, signature)) == "INVALID_SIGNATURE"


def test_tampered_body_is_refused():
    timestamp, signature = sign()
    tampered = BODY.replace(b'"0.1"', b'"10"')
    assert code_of(lambda: verify(timestamp, signature, body=tampered)) == "INVALID_SIGNATURE"


def test_wrong_secret_is_refused():
    timestamp, signature = sign(secret="whsec_" + "cd" * 32)
    assert code_of(lambda: verify(timestamp, signature)) == "INVALID_SIGNATURE"


def test_timestamp_is_covered_by_the_signature():
    # Re-using a captured signature with a fresh timestamp must not work.
    _, signature = sign(timestamp=NOW - 3600)
    assert code_of(lambda: verify(str(NOW), signature)) == "INVALID_SIGNATURE"


def test_empty_secret_never_verifies():
    timestamp, signature = sign(secret="")
    assert code_of(lambda: verify(timestamp, signature, secret="")) == "INVALID_SIGNATURE"


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamps_within_300_seconds_either_way_are_accepted(offset):
    assert verify(*sign(timestamp=NOW + offset)) == NOW + offset


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_timestamps_more_than_300_seconds_away_are_expired(offset):
    assert code_of(lambda: verify(*sign(timestamp=NOW + offset))) == "SIGNATURE_EXPIRED"


def test_an_old_timestamp_with_a_bad_signature_is_invalid_not_expired():
    # Only a holder of the secret learns that the clock is the problem.
    timestamp, _ = sign(timestamp=NOW - 3600)
    assert code_of(lambda: verify(timestamp, "0" * 64)) == "INVALID_SIGNATURE"


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=80), offset=st.integers(-300, 300))
def test_any_signed_body_verifies(body, secret, offset):
    assert verify(*sign(body=body, timestamp=NOW + offset, secret=secret), body=body, secret=secret) == NOW + offset


@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_single_byte_change_is_refused(body, data):
    timestamp, signature = sign(body=body)
    index = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    assert code_of(lambda: verify(timestamp, signature, body=changed)) == "INVALID_SIGNATURE"
