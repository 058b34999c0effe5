"""Checks on what a leader types into a portfolio: name, social links, passcode.

Each check raises ``DomainError`` with a stable code and the field it is about.
"""

import re
from functools import cache
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from glin_profanity import Filter

from copytrading.errors import DomainError

NAME_MAX_LENGTH = 80
URL_MAX_LENGTH = 200
PASSCODE_RE = re.compile(r"\d{8}")

# Which hosts each social link may point to; "website" takes any public host.
SOCIAL_HOSTS: dict[str, tuple[str, ...] | None] = {
    "x_url": ("x.com", "twitter.com"),
    "telegram_url": ("t.me", "telegram.me"),
    "website_url": None,
}
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_SEPARATORS = re.compile(r"[_\-]+")
_NUMBERS = re.compile(r"(?<![^\W\d_])[\d.,]+(?![^\W\d_])")


@cache
def _profanity_filter() -> Filter:
    # Whole words only (so "Scunthorpe", "Classic Assets", "Analytics" pass),
    # with leetspeak ("sh1t", "$h!t", "a55") and Unicode look-alikes normalized.
    return Filter(
        {
            "languages": ["english"],
            "word_boundaries": True,
            "detect_leetspeak": True,
            "leetspeak_level": "aggressive",
            "normalize_unicode": True,
        }
    )


def is_profane(text: str) -> bool:
    # A number is not leetspeak: "85" would read as "bs" and "455" as "ass".
    text = _NUMBERS.sub(" ", text)
    # "ShitCoin" and "shit_coin" are two words to a reader: split them so the
    # whole-word matcher sees them.
    spaced = _SEPARATORS.sub(" ", _CAMEL.sub(" ", text))
    profanity = _profanity_filter()
    return profanity.is_profane(text) or profanity.is_profane(spaced)


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise DomainError("INVALID_NAME", "The name must not be empty.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise DomainError("INVALID_NAME", f"The name has at most {NAME_MAX_LENGTH} characters.", field="name")
    if is_profane(name):
        raise DomainError("NAME_PROFANE", "The name contains offensive language; choose another.", field="name")
    return name


_url_validator = URLValidator(schemes=["https", "http"])


def clean_social_url(field: str, url: str) -> str:
    """An http(s) URL without credentials, on the network's own hosts for X
    and Telegram. Empty means no link."""
    url = url.strip()
    if not url:
        return ""
    if len(url) > URL_MAX_LENGTH:
        raise DomainError("INVALID_URL", f"A link has at most {URL_MAX_LENGTH} characters.", field=field)
    try:
        _url_validator(url)
    except ValidationError:
        raise DomainError("INVALID_URL", "Enter a full http(s) link.", field=field) from None
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise DomainError("INVALID_URL", "A link may not carry a user name or password.", field=field)
    host = (parts.hostname or "").lower()
    allowed = SOCIAL_HOSTS[field]
    if allowed is not None:
        if host.removeprefix("www.") not in allowed:
            raise DomainError("INVALID_URL", f"The link must point to {' or '.join(allowed)}.", field=field)
        if not parts.path.strip("/"):
            raise DomainError("INVALID_URL", "The link must name a profile or channel.", field=field)
    elif host in ("localhost",) or not re.search(r"[a-z]", host.rsplit(".", 1)[-1]):
        # URLValidator accepts IP addresses and localhost: a public website has a name.
        raise DomainError("INVALID_URL", "The website must be a public host name.", field=field)
    return url


def clean_passcode(passcode: str) -> str:
    if not isinstance(passcode, str) or not PASSCODE_RE.fullmatch(passcode):
        raise DomainError("INVALID_PASSCODE_FORMAT", "The passcode is exactly 8 digits.", field="passcode")
    return passcode
