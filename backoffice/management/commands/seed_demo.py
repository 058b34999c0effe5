"""Seed the demo world (idempotent): instruments, admin, leaders, followers."""

from django.core.management.base import BaseCommand

from backoffice import demo


class Command(BaseCommand):
    help = "Create the demo users, portfolios and subscriptions; running it again creates nothing new."

    def add_arguments(self, parser):
        parser.add_argument("--followers", type=int, default=demo.FOLLOWER_COUNT, help="how many demo followers")

    def handle(self, *args, **options):
        report = demo.demo_seed(followers=options["followers"])
        if not report.created_anything:
            self.stdout.write("demo data already present; nothing created")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"demo seeded: {report.instruments} instruments, {report.users} users, "
                f"{report.portfolios} portfolios, {report.subscriptions} subscriptions"
            )
        )
