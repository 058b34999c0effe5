"""``manage.py seed_demo [--followers N] [--quiet]``: seed the demo world
(idempotent): instruments, admin, leaders, followers. The followers are
written set-based (backoffice/demo.py through backoffice/loadgen.py), a batch
per transaction, with a progress bar on stderr.

Exit code: 0 seeded or nothing to do, 2 cannot run (bad arguments, the
database down)."""

import sys

from django.core.management.base import BaseCommand, CommandError

from backoffice import demo
from backoffice.ops.progress import Progress, add_quiet_argument
from copytrading.errors import DomainError
from copytrading.outages import is_outage

CANNOT_RUN = 2


class Command(BaseCommand):
    help = "Create the demo users, portfolios and subscriptions; running it again creates nothing new."

    def add_arguments(self, parser):
        parser.add_argument("--followers", type=int, default=demo.FOLLOWER_COUNT, help="how many demo followers")
        add_quiet_argument(parser)

    def handle(self, *args, followers: int, **options):
        if followers < 0:
            raise CommandError("--followers cannot be negative", returncode=CANNOT_RUN)
        with Progress.for_command(self, options, "seed_demo followers", total=followers) as progress:
            try:
                report = demo.demo_seed(followers=followers, progress=progress.update)
            except DomainError as exc:
                raise CommandError(f"{exc.code}: {exc.detail}", returncode=CANNOT_RUN) from None
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.stderr.write(f"cannot seed: a backing service is unreachable ({exc})")
                sys.exit(CANNOT_RUN)
        if not report.created_anything:
            self.stdout.write("demo data already present; nothing created")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"demo seeded: {report.instruments} instruments, {report.users} users, "
                f"{report.portfolios} portfolios, {report.subscriptions} subscriptions"
            )
        )
