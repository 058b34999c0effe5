"""``manage.py rebuild_stats [--portfolio ID] [--rank] [--dry-run] [--quiet]``:
recompute the portfolio statistics the catalog and the ranking read
(portfolios.stats.stats_refresh, beat's work every 5 minutes) now, with
progress over the portfolios. ``--rank`` then scores every active portfolio
again (portfolios.scoring.ranking_run, beat's work every 2 hours); scores are
relative to each other, so it cannot be limited to one portfolio.
``--dry-run`` computes the statistics and says which portfolios' rows would
change, writing nothing.

Exit code: 0 done or nothing to do (also a dry run, whatever it finds),
2 cannot run (no such portfolio, --rank with --portfolio, the database
unreachable)."""

from django.core.management.base import BaseCommand

from copytrading.ops.exits import cannot_run, cannot_run_on_outage
from copytrading.ops.progress import Progress, add_quiet_argument
from portfolios.models import Portfolio
from portfolios.scoring import ranking_run
from portfolios.stats import stats_refresh, stats_stale

LISTED = 20


class Command(BaseCommand):
    help = "Recompute the portfolio statistics (catalog, ranking) now; --rank also scores the portfolios again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--portfolio", type=int, default=None, help="only this portfolio (its id)")
        parser.add_argument("--rank", action="store_true", help="then run the ranking (all portfolios)")
        parser.add_argument("--dry-run", action="store_true", help="say which portfolios would change; write nothing")
        add_quiet_argument(parser)

    def handle(self, *args, portfolio: int | None, rank: bool, dry_run: bool, **options) -> None:
        if rank and portfolio is not None:
            raise cannot_run("--rank scores all portfolios against each other: it cannot take --portfolio")
        with cannot_run_on_outage("rebuild the statistics"):
            if portfolio is not None and not Portfolio.objects.filter(pk=portfolio).exists():
                raise cannot_run(f"portfolio {portfolio} does not exist")
            ids = None if portfolio is None else [portfolio]
            with Progress.for_command(self, options, "rebuild_stats portfolios") as progress:
                if dry_run:
                    looked, stale = stats_stale(portfolio_ids=ids, progress=progress.update)
                else:
                    refreshed = stats_refresh(portfolio_ids=ids, progress=progress.update)
            if dry_run:
                shown = ", ".join(str(pk) for pk in stale[:LISTED]) + (" ..." if len(stale) > LISTED else "")
                self.stdout.write(
                    f"{len(stale)} of {looked} portfolios' statistics would change"
                    + (f": {shown}" if stale else "")
                    + ("; the ranking would run" if rank else "")
                    + "; nothing written"
                )
                return
            self.stdout.write(f"statistics of {refreshed} portfolios recomputed")
            if rank:
                scores = ranking_run()
                self.stdout.write(f"ranking: {len(scores)} portfolios scored")
