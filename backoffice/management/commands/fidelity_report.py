"""``manage.py fidelity_report [--days 30] [--followers 100] [--seed N] [--force] [--wait S] [--quiet]``:
the copy-fidelity report (issue #18 §3; backoffice/fidelity.py, docs/operations.md
"Copy fidelity"). Prints on stdout, first, exactly

    fidelity followers=N days=D max_gap_pp=X median_gap_pp=Y unexplained=U

then the leader's line, one line per group and the divergence table.

Exit code: 0 the goal is met (max_gap_pp <= 0.25 over the ample group and no
unexplained divergence), 1 it is not (the report is printed all the same),
2 cannot run (bad sizes, a database with others' portfolios or subscriptions
without --force, the broker or database unreachable, no worker finishing a
step within --wait)."""

from django.core.management.base import BaseCommand

from backoffice.fidelity import WAIT_SECONDS, fidelity_run
from copytrading.errors import DomainError
from copytrading.ops.exits import FINDINGS, broker_problem, cannot_run, cannot_run_on_outage
from copytrading.ops.progress import Progress, add_quiet_argument

HELP = """Run a seeded, simulated month on the real engine and compare each follower's ROI with the leader's.

The run: a fresh leader (portfolio mode "all", capital 100,000, profit share 10 %) trades about
200 x DAYS / 30 times (the demo strategy, seeded by --seed: opens, increases, reduces, closes on three
perpetuals, buys and sells on two spot pairs) with a random-walk step of every market before each
trade. Simulated time is compressed: everything runs now, step after step. Copies go through the
outbox and Celery: services mode needs a running worker (fanout, default, watchdog queues); with
eager Celery they run inline. After each step the run waits until the leader's events are done and a
watchdog tick has run, so a seed gives one run. At the end the leader closes and sells everything.

Followers: about 60 % "ample" (progressive 1.0, twice the leader's capital, no risk limits); the rest
in turn small (progressive 0.01, 2 % of the capital), stop (a 2 % drawdown stop), risk (one open
position at most), capital (progressive 0.5, 15 %), adaptive (risk factor 1.0, half), fixed (1,000),
slippage (0.01 % tolerance). Users are named fidelity-<seed>-r<run>-*; nothing else is touched, but as
the run moves the marks of what it trades it refuses a database where anyone else has portfolios or
subscriptions, unless --force.

ROI: the leader's PnL / 100,000. A follower's PnL (equity at the end - invested) PLUS the profit share
it paid (the fee is listed as a cause, not counted in the gap) over: m x 100,000 for progressive m,
r x its capital for adaptive r; fixed notional has no scale (no gap). gap_pp = |leader ROI - follower
ROI| x 100. max_gap_pp and median_gap_pp are over the ample group; unexplained counts divergences of
every follower with no recorded cause.

Divergences: every execution row not COPIED, or whose quantity differs from the ideal (progressive
opens: the leader's quantity x m; otherwise the size the engine recorded before rounding) or whose
price differs from the leader's; one "fee" row per follower that paid a profit share; one "residual"
row per follower whose gap exceeds 0.005 pp with no row explaining it. Causes: step_rounding,
maximum_quantity, minimum_quantity, minimum_notional, slippage, risk_action (RISK_* codes, a pause by
the watchdog), capital (INSUFFICIENT_*), fee, copy_settings, trigger (the mirror closed on the same
liquidation), follow_up (nothing to reduce after an earlier divergence on the symbol), unexplained.

Exit code: 0 max_gap_pp <= 0.25 and unexplained = 0; 1 not; 2 cannot run."""


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name, subcommand, **kwargs):
        from argparse import RawDescriptionHelpFormatter

        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=30, help="simulated days (about 200 x DAYS / 30 trades)")
        parser.add_argument("--followers", type=int, default=100, help="followers (about 60 %% ample)")
        parser.add_argument("--seed", type=int, default=1, help="the run's random seed")
        parser.add_argument("--force", action="store_true", help="run on a database with others' portfolios")
        parser.add_argument(
            "--wait", type=float, default=WAIT_SECONDS, help="seconds a step may take before the run gives up"
        )
        add_quiet_argument(parser)

    def handle(self, *args, days: int, followers: int, seed: int, force: bool, wait: float, **options) -> None:
        if days < 1 or followers < 1:
            raise cannot_run("--days and --followers must be at least 1")
        if wait <= 0:
            raise cannot_run("--wait must be positive")
        problem = broker_problem()
        if problem:
            raise cannot_run(f"the broker is unreachable ({problem}); nothing run")
        with (
            cannot_run_on_outage("run the fidelity report"),
            Progress.for_command(self, options, "fidelity_report trades") as progress,
        ):
            try:
                report = fidelity_run(
                    days=days, followers=followers, seed=seed, force=force, wait_seconds=wait, progress=progress.update
                )
            except DomainError as exc:
                # A foreign database, a step not done in time, or the world refused
                # (e.g. more followers than the leader's cap): nothing to report.
                raise cannot_run(f"{exc.code}: {exc.detail}") from None
        for line in report.lines:
            self.stdout.write(line)
        if not report.summary.ok:
            raise SystemExit(FINDINGS)
