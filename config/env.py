"""Typed helpers for reading configuration from the environment.

Every variable read here is documented in README.md ("Configuration").
"""

import os
import secrets
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


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def local_secret_key(path: Path) -> str:
    """A random key kept in ``path`` (mode 0600), made on first use: each
    development machine gets its own, and it survives restarts. Processes
    started together race here, so it is written aside and linked into place."""
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won; use its key
        finally:
            temporary.unlink()
    return path.read_text().strip()
