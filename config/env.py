"""Typed helpers for reading configuration from the environment.

Every variable read here is documented in README.md ("Configuration").
"""

import base64
import ipaddress
import os
import secrets
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def env_decimal(name: str, default: str) -> Decimal:
    raw = os.environ.get(name)
    return Decimal(default if raw in (None, "") else raw)


def env_list(name: str, default: str = "") -> list[str]:
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str, default: str = "") -> list[str]:
    """Comma-separated addresses or CIDRs (host bits allowed); a malformed one
    is a ValueError naming it, so settings refuse to load instead of failing later."""
    networks = env_list(name, default)
    for item in networks:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"{name}: {item!r} is not an IP address or network (comma-separated, e.g. 10.0.0.0/8,fd00::/8)"
            ) from None
    return networks


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def local_secret_key(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(50)) -> str:
    """A random key kept in ``path`` (mode 0600), made on first use by ``make``:
    each development machine gets its own, and it survives restarts. Processes
    started together race here, so it is written aside and linked into place."""
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won; use its key
        finally:
            temporary.unlink()
    return path.read_text().strip()


def env_fernet_keys(name: str, *, generated: Path | None) -> list[str]:
    """Fernet keys (url-safe base64 of 32 bytes), comma separated; the first
    one encrypts, every one decrypts. Unset: one key generated once into
    ``generated`` (a development machine), or none when ``generated`` is None.
    A malformed key stops the process at start, not at the first secret."""
    keys = env_list(name)
    if not keys and generated is not None:
        keys = [local_secret_key(generated, lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())]
    for position, key in enumerate(keys, start=1):
        try:
            raw = base64.urlsafe_b64decode(key.encode())
        except (ValueError, TypeError):
            raw = b""
        if len(raw) != 32:
            raise ValueError(
                f"{name}: key #{position} is not a Fernet key (url-safe base64 of 32 bytes; "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            )
    return keys
