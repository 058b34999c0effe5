"""Shared benchmark plumbing: a fresh PostgreSQL database and Django set up on it."""

import os
import subprocess
import sys
from urllib.parse import urlparse

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/copytrading_bench"


def prepare_database() -> str:
    """Recreate the bench database (never the one in DATABASE_URL) and set up Django."""
    base = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    parsed = urlparse(base)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = base
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return base


def run_module(module: str) -> int:
    return subprocess.call([sys.executable, "-m", module])
