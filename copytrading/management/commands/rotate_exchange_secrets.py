"""Re-encrypt every linked exchange account's credentials under the newest
key (the first of EXCHANGE_SECRET_KEYS). Idempotent: run it after putting a
new key first, and remove the old key only once it reports 0 re-encrypted and
0 unreadable. Exits non-zero when some account no key opens."""

from django.core.management.base import BaseCommand, CommandError

from copytrading.exchanges.services import exchange_secrets_rotate

MAX_LISTED = 20


class Command(BaseCommand):
    help = "Re-encrypt linked exchange accounts' secrets with the newest EXCHANGE_SECRET_KEYS key."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would change, change nothing")

    def handle(self, *args, dry_run: bool = False, **options):
        report = exchange_secrets_rotate(dry_run=dry_run)
        verb = "would be re-encrypted" if dry_run else "re-encrypted"
        self.stdout.write(f"{verb}: {report.reencrypted}")
        self.stdout.write(f"already under the newest key: {report.current}")
        self.stdout.write(f"unreadable with every configured key: {len(report.unreadable)}")
        for account_id in report.unreadable[:MAX_LISTED]:
            self.stdout.write(f"  exchange account #{account_id}")
        if report.unreadable:
            raise CommandError("some exchange accounts are encrypted with a key that is no longer configured")
        self.stdout.write(self.style.SUCCESS("done" if not dry_run else "dry run: nothing changed"))
