"""Real servers for the outage tests: a Redis and a PostgreSQL cluster of the
test's own on spare ports, the web process (daphne) against them, and an HTTP
client with a timeout that measures each answer. Every server can be stopped,
started, frozen (SIGSTOP) and thawed (SIGCONT)."""

import contextlib
import glob
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.1):
    end = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception:  # noqa: BLE001 - not up yet, whatever the reason
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not ready within {timeout} s")
        time.sleep(interval)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class RedisServer:
    def __init__(self, root: Path):
        self.dir = root / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.frozen = False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _port_open(self.port), timeout=10, what="redis")

    def stop(self) -> None:
        self.thaw()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False


class PostgresCluster:
    """``initdb`` + ``pg_ctl`` in a temporary folder owned by ``postgres``
    (PostgreSQL refuses to run as root)."""

    def __init__(self, root: Path):
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="outage-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/copytrading"
        self.frozen: list[int] = []
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "pg.log"), "-w", "start"
        )

    def create_database(self) -> None:
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "copytrading")

    def stop(self) -> None:
        self.thaw()
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def _pids(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> None:
        """Every process of the cluster: the postmaster and each backend."""
        self.frozen = self._pids()
        _signal_all(self.frozen, signal.SIGSTOP)

    def thaw(self) -> None:
        _signal_all(self.frozen, signal.SIGCONT)
        self.frozen = []

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Answer:
    status: int
    headers: dict
    body: dict | list | str
    seconds: float


class Web:
    """daphne ``config.asgi:application``, as production runs it."""

    def __init__(self, root: Path, env: dict):
        self.port = free_port()
        self.env = env
        self.log = root / "web.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "config.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: self.request("GET", "/healthz", timeout=5).status in (200, 503), timeout=60, what="daphne")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def request(
        self, method: str, path: str, body=None, *, token: str | None = None, headers=None, timeout: float = 20
    ) -> Answer:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Token {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        started = time.monotonic()
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            raw = response.read()
            seconds = time.monotonic() - started
            text = raw.decode(errors="replace")
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, parsed, seconds)
        finally:
            conn.close()


@dataclass
class Stack:
    redis: RedisServer
    postgres: PostgresCluster
    web: Web
    seed: dict

    def signal_headers(self, body: bytes) -> dict:
        timestamp = str(int(time.time()))
        secret = self.seed["webhook_secret"].encode()
        signature = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return {"X-Signature-Timestamp": timestamp, "X-Signature": signature}


def django_env(root: Path, redis: RedisServer, postgres: PostgresCluster) -> dict:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "DB_", "REQUEST_"))
    }
    env.update(
        DATABASE_URL=postgres.url,
        REDIS_URL=redis.url,
        VAR_DIR=str(root / "var"),
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_django(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout
