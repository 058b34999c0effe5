"""``manage.py feed_prices --exchange binanceusdm``: stream an exchange's
marks into the instruments synced from it (copytrading/exchanges/feed.py)."""

import signal
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from copytrading.errors import DomainError
from copytrading.exchanges.feed import PollReport, PriceFeed


class Command(BaseCommand):
    help = "Poll an exchange's mark prices through ccxt and write them as marks (with back-off and sanity flags)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--exchange", required=True, help="ccxt exchange id the instruments were synced from")
        parser.add_argument("--interval", type=float, default=None, help="seconds between polls (FEED_POLL_SECONDS)")
        parser.add_argument("--polls", type=int, default=0, help="stop after this many polls (0: run until stopped)")
        parser.add_argument("--sync", action="store_true", help="run sync_instruments for the exchange first")
        parser.add_argument(
            "--mode",
            choices=["auto", "stream", "poll"],
            default=None,
            help="auto: stream where ccxt.pro can (FEED_MODE)",
        )

    def handle(
        self, *args, exchange: str, interval: float | None, polls: int, sync: bool, mode: str | None, **options
    ) -> None:
        if (interval is not None and interval < 0) or polls < 0:
            raise CommandError("need --interval >= 0 and --polls >= 0")
        if sync:
            call_command("sync_instruments", "--exchange", exchange, stdout=self.stdout)
        try:
            feed = PriceFeed(exchange, poll_seconds=interval)
        except DomainError as error:
            raise CommandError(error.detail) from error
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: stop.set())  # run_stack stops children with SIGTERM
        mode = mode or settings.FEED_MODE
        if mode == "auto":
            mode = "stream" if feed.streams() else "poll"
        self.stdout.write(
            f"price feed: {exchange}, {mode}" + (f" every {feed.poll_seconds}s" if mode == "poll" else "")
        )
        try:
            done = feed.run(stop=stop, max_polls=polls, on_poll=self._report, mode=mode)
        except KeyboardInterrupt:
            done = -1
        self.stdout.write(f"price feed stopped after {done} polls")

    def _report(self, report: PollReport) -> None:
        if report.stale_flagged:
            self.stdout.write(f"no fresh mark for too long: {report.stale_flagged} marks flagged stale")
        if report.idle:
            return
        if report.error:
            self.stdout.write(f"poll failed: {report.error}; next in {report.wait:.1f}s")
            return
        self.stdout.write(
            f"{len(report.written)} marks"
            + (f", flagged {report.flagged}" if report.flagged else "")
            + (f", stale {report.stale}" if report.stale else "")
            + (f", missing {report.missing}" if report.missing else "")
        )
