"""A real daphne process for the tests that need one (services pass)."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daphne(env: dict[str, str], *, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE):
    """daphne on a free port with exactly ``env``: (process, port), not yet listening."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=stderr,
    )
    return proc, port


def wait_listening(proc: subprocess.Popen, port: int, failure: Callable[[], str]) -> None:
    """Until ``port`` takes connections (60 s at most); if daphne exits or the
    time runs out, RuntimeError with ``failure()`` (its output)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start:\n{failure()}") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running_daphne(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, int]]:
    """daphne on a free port with ``env`` over this process's environment,
    listening when yielded, stopped after."""
    proc, port = start_daphne({**os.environ, **env})
    try:
        wait_listening(proc, port, lambda: proc.stderr.read().decode()[-2000:])
        yield proc, port
    finally:
        stop(proc)
