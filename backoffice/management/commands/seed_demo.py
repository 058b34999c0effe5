"""``manage.py seed_demo [--followers N] [--quiet]``: seed the demo world
(idempotent): instruments, admin, leaders, followers. The followers are
written set-based (backoffice/demo.py through backoffice/loadgen.py), a batch
per transaction, with a progress bar on stderr.

Exit code: 0 seeded or nothing to do, 2 cannot run (bad arguments, the
database down)."""

from django.core.management.base import BaseCommand, CommandError

from backoffice import demo
from copytrading.errors import DomainError
from copytrading.ops.exits import cannot_run, cannot_run_on_outage
from copytrading.ops.progress import Progress, add_quiet_argument


class Command(BaseCommand):
    help = "Create the demo users, portfolios and subscriptions; running it again creates nothing new."

    def add_arguments(self, parser):
        parser.add_argument("--followers", type=int, default=demo.FOLLOWER_COUNT, help="how many demo followers")
        add_quiet_argument(parser)

    def handle(self, *args, followers: int, **options):
        if followers < 0:
            raise cannot_run("--followers cannot be negative")
        with (
            cannot_run_on_outage("seed the demo"),
            Progress.for_command(self, options, "seed_demo followers", total=followers) as progress,
        ):
            try:
                report = demo.demo_seed(followers=followers, progress=progress.update)
            except DomainError as exc:
                raise CommandError(f"{exc.code}: {exc.detail}") from None
        if not report.created_anything:
            self.stdout.write("demo data already present; nothing created")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"demo seeded: {report.instruments} instruments, {report.users} users, "
                f"{report.portfolios} portfolios, {report.subscriptions} subscriptions"
            )
        )
