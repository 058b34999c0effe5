"""The market simulator: a seeded random walk of every mark price, with the
demo leaders trading now and then. The logic lives in backoffice.demo; this
command only loops, sleeps and reports."""

import logging
import random
import signal
import threading
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections

from backoffice import demo

log = logging.getLogger(__name__)

PRICE_REPORT_EVERY = 30  # ticks


class Command(BaseCommand):
    help = "Move every instrument's price with a seeded random walk and let the demo leaders trade."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between ticks")
        parser.add_argument("--ticks", type=int, default=0, help="stop after this many ticks (0: run until stopped)")
        parser.add_argument(
            "--trade-probability", type=float, default=0.5, help="chance per tick that a demo leader trades"
        )
        parser.add_argument("--volatility-bps", default="15", help="standard deviation of one price step, in bps")

    def handle(self, *args, **options):
        interval, ticks, probability = options["interval"], options["ticks"], options["trade_probability"]
        try:
            volatility = Decimal(options["volatility_bps"])
        except InvalidOperation:
            raise CommandError("--volatility-bps must be a number") from None
        if interval < 0 or ticks < 0 or not 0 <= probability <= 1 or not 0 <= volatility <= 2000:
            raise CommandError(
                "need --interval >= 0, --ticks >= 0, 0 <= --trade-probability <= 1, 0 <= --volatility-bps <= 2000"
            )
        seed = options["seed"] if options["seed"] is not None else random.SystemRandom().randrange(2**32)
        rng = random.Random(seed)
        self.stdout.write(
            f"market simulator: seed={seed} interval={interval}s trade-probability={probability} "
            f"volatility={volatility}bps" + (f" ticks={ticks}" if ticks else "")
        )

        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            # run_stack stops its children with SIGTERM: finish the tick, then leave.
            signal.signal(signal.SIGTERM, lambda *_: stop.set())

        tick = trades = refused = 0
        try:
            while not stop.is_set():
                tick += 1
                close_old_connections()  # a long-lived process must not keep a broken connection
                try:
                    report = demo.demo_tick(rng=rng, volatility_bps=volatility, trade_probability=probability)
                except DatabaseError:
                    # A busy SQLite file or a lost PostgreSQL connection: try again next tick.
                    log.exception("market tick %s failed", tick)
                else:
                    trades += report.trade is not None
                    refused += report.error is not None
                    self._report(tick, report)
                if ticks and tick >= ticks:
                    break
                stop.wait(interval)
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"market simulator stopped after {tick} ticks: {trades} leader trades, {refused} refused")

    def _report(self, tick: int, report: demo.TickReport) -> None:
        if report.trade is not None:
            plan = report.trade.plan
            size = "all" if plan.quantity is None else plan.quantity.normalize()
            self.stdout.write(
                f"tick {tick}: portfolio {report.trade.portfolio_id} {plan.action} {plan.side} {size} {plan.symbol}"
                + (f" x{plan.leverage}" if plan.leverage > 1 else "")
                + f" -> leader events {report.trade.event_ids}"
            )
        if report.error is not None:
            self.stdout.write(f"tick {tick}: leader order refused: {report.error.code} {report.error.detail}")
        if tick % PRICE_REPORT_EVERY == 1:
            prices = ", ".join(f"{symbol} {price.normalize()}" for symbol, price in report.prices.items())
            self.stdout.write(f"tick {tick}: prices {prices}")
