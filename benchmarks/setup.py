"""Shared benchmark plumbing: a fresh PostgreSQL database, Django set up on it,
and a real Celery worker against Redis."""

import os
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/copytrading_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
ROOT = Path(__file__).resolve().parent.parent


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
    os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # services mode refuses to start without a key; the bench has nothing to protect
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return base


@contextmanager
def celery_worker(concurrency: int = 2):
    """A real worker process (prefork pool) on the bench database and broker."""
    import redis

    from config.celery import app

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    hostname = f"bench-{os.getpid()}@localhost"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "fanout,default,watchdog,exchange",
         "-c", str(concurrency), "-n", hostname, "-l", os.environ.get("BENCH_WORKER_LOG", "warning"),
         "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=os.environ.copy(),
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[hostname], timeout=0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bench worker did not start")
        yield proc
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def run_module(module: str) -> int:
    return subprocess.call([sys.executable, "-m", module], cwd=ROOT)
