"""`make run`: the whole product on one machine.

Migrates, collects static files, seeds the demo, then starts and supervises
the processes of the design (web, worker, beat) plus the market simulator,
or, with ``MARKET_DATA_EXCHANGE`` set, the price feed of that exchange
(``feed_prices``; run ``sync_instruments`` for it first).
The processes are the same in both modes; only the transports differ
(SQLite + filesystem broker when DATABASE_URL/REDIS_URL are unset, PostgreSQL
+ Redis when they are set).

Ctrl-C or SIGTERM stops every child (a second one kills them); if any child
dies on its own, the rest are stopped and the command exits non-zero.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from backoffice import demo
from config.env import env_int
from copytrading.observability import metrics

HOST = "127.0.0.1"
STOP_TIMEOUT = 20.0  # seconds a child gets to shut down cleanly before it is killed
READY_TIMEOUT = 60.0  # seconds to wait for /healthz before printing the banner anyway
POLL = 0.5


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    reader: threading.Thread | None = field(default=None, repr=False)


def stack_processes(*, port: int, market: bool = True) -> list[Child]:
    """The stack's processes, each run with this interpreter (the virtualenv's)."""
    python = sys.executable
    worker = [python, "-m", "celery", "-A", "config", "worker", "-Q", "fanout,default,watchdog,exchange"]
    worker += ["--concurrency", "2", "-l", "info", "-n", "worker@%h"]
    if settings.EMBEDDED:
        # Threads share one process: no fork after SQLite connections exist,
        # and one consumer polling the filesystem broker instead of several.
        worker += ["--pool", "threads"]
    children = [
        Child("web", [python, "-m", "daphne", "-b", HOST, "-p", str(port), "config.asgi:application"]),
        Child("worker", worker),
        Child("beat", [python, "-m", "celery", "-A", "config", "beat", "-l", "info"]),
    ]
    manage = str(settings.BASE_DIR / "manage.py")
    if market and settings.MARKET_DATA_EXCHANGE:  # real marks from an exchange instead of the simulator
        feed = [python, manage, "feed_prices", "--exchange", settings.MARKET_DATA_EXCHANGE, "--sync"]
        children.append(Child("feed", feed))
    elif market:
        children.append(Child("market", [python, manage, "simulate_market"]))
    return children


def _parent_death_signal():
    """On Linux, have each child receive SIGTERM if this supervisor is killed
    outright (SIGKILL leaves no chance to stop them). Resolved before any
    fork: the function run in the child only calls into libc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


class Command(BaseCommand):
    help = "Run the whole product (web, worker, beat, market simulator) with demo data; Ctrl-C stops it."

    def add_arguments(self, parser):
        parser.add_argument("--no-market", action="store_true", help="do not start the market simulator")

    def handle(self, *args, **options):
        self._lock = threading.Lock()  # one line at a time from the children's reader threads
        self._signals = 0
        port = env_int("PORT", 8000)
        mode = "embedded (SQLite + filesystem broker)" if settings.EMBEDDED else "services (PostgreSQL + Redis)"
        self._say(f"mode: {mode}")
        self._say("migrate")
        call_command("migrate", interactive=False, verbosity=0)
        self._say("collectstatic")
        call_command("collectstatic", interactive=False, verbosity=0)
        self._say("seed_demo")
        call_command("seed_demo")
        # The children open their own connections; the supervisor needs none.
        connections.close_all()

        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        children = stack_processes(port=port, market=not options["no_market"])
        failed = None
        try:
            self._start(children)
            failed = self._supervise(children, port)
        finally:
            self._stop(children)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if failed is not None:
            raise CommandError(f"{failed.name} exited with code {failed.process.returncode}; stopped the rest")
        self._say("stopped")

    # --- processes ------------------------------------------------------------

    def _start(self, children: list[Child]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Metrics of every child in one directory the web's /metrics reads
        # (services mode set it in settings; embedded runs separate processes
        # too). Emptied before any child starts: files of an earlier run's
        # processes would otherwise be summed in (docs/operations.md, "Metrics").
        metrics_dir = Path(env.setdefault(metrics.MULTIPROC_ENV, str(settings.VAR_DIR / "prometheus")))
        metrics.multiproc_dir_reset(metrics_dir)
        self._say(f"metrics: {metrics_dir} (emptied)")
        preexec = _parent_death_signal()
        for child in children:
            self._say(f"start {child.name}: {' '.join(child.argv[1:])}")
            child.process = subprocess.Popen(
                child.argv,
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Its own process group: a terminal's Ctrl-C reaches only the
                # supervisor, which stops the children in order.
                process_group=0,
                preexec_fn=preexec,
            )
        # Reader threads only after every fork (fork and threads do not mix).
        for child in children:
            child.reader = threading.Thread(target=self._relay, args=(child,), daemon=True)
            child.reader.start()

    def _relay(self, child: Child) -> None:
        """Copy a child's output to ours, each line prefixed with its name."""
        for raw in iter(child.process.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            with self._lock:
                self.stdout.write(f"{child.name:<6} | {line}")

    def _supervise(self, children: list[Child], port: int) -> Child | None:
        started = time.monotonic()
        announced = False
        while not self._signals:
            for child in children:
                if child.process.poll() is not None:
                    return child
            if not announced and (self._healthy(port) or time.monotonic() - started > READY_TIMEOUT):
                self._banner(port)
                announced = True
            time.sleep(POLL)
        return None

    def _stop(self, children: list[Child]) -> None:
        running = [c for c in children if c.process is not None and c.process.poll() is None]
        if running:
            self._say(f"stopping {', '.join(c.name for c in running)}")
        for child in running:
            self._signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        signals_at_start = self._signals
        while any(c.process.poll() is None for c in running):
            # A second Ctrl-C, or a child that ignores SIGTERM: kill.
            if time.monotonic() > deadline or self._signals > signals_at_start:
                for child in running:
                    if child.process.poll() is None:
                        self._say(f"killing {child.name}")
                        self._signal_group(child, signal.SIGKILL)
                break
            time.sleep(0.1)
        for child in children:
            if child.process is not None:
                child.process.wait()
            if child.reader is not None:
                child.reader.join(timeout=2)

    @staticmethod
    def _signal_group(child: Child, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(child.process.pid, signum)

    def _on_signal(self, signum, frame) -> None:
        self._signals += 1

    # --- output ---------------------------------------------------------------

    def _say(self, message: str) -> None:
        with self._lock:
            self.stdout.write(self.style.MIGRATE_HEADING(f"==> {message}"))

    @staticmethod
    def _healthy(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _banner(self, port: int) -> None:
        base = f"http://{HOST}:{port}"
        lines = [
            "",
            "The copy-trading demo is running." + ("" if self._healthy(port) else " (web not healthy yet)"),
            f"  leaderboard (start)  {base}/",
            f"  my copies            {base}/me/copies/  (log in as a follower)",
            f"  leader desk          {base}/me/portfolios/  (log in as a leader)",
            f"  admin (back office)  {base}/admin/",
            f"  developers           {base}/developers/",
            f"  API docs             {base}/api/docs/",
            f"  API (v1)             {base}/api/v1/market/prices",
            f"  health               {base}/healthz",
            f"  metrics (staff)      {base}/metrics",
            "Logins:",
            f"  staff     {demo.ADMIN_USERNAME} / {demo.ADMIN_PASSWORD}",
            f"  leaders   {', '.join(s.username for s in demo.DEMO_LEADERS)} / {demo.DEMO_PASSWORD}",
            f"  followers {demo.follower_username(1)} .. {demo.follower_username(demo.FOLLOWER_COUNT)}"
            f" / {demo.DEMO_PASSWORD}",
            "Try:",
            f"  curl -s -X POST {base}/api/v1/auth/token -H 'Content-Type: application/json'"
            f' -d \'{{"username": "{demo.follower_username(1)}", "password": "{demo.DEMO_PASSWORD}"}}\'',
            f"  curl -s {base}/api/v1/subscriptions -H 'Authorization: Token <token>'",
            "Ctrl-C stops everything.",
            "",
        ]
        with self._lock:
            self.stdout.write("\n".join(lines))
