"""Prove the ledger: Σ balances = 0, every cached balance = Σ of its transfers,
no bounded account negative, and every locked amount or reserved holding equal
to what open positions and resting orders hold. Exits non-zero when any of it
fails."""

from django.core.management.base import BaseCommand, CommandError

from copytrading.ledger import ledger_check

# Enough rows to find the problem without flooding a terminal.
MAX_LISTED = 20


class Command(BaseCommand):
    help = "Check the ledger invariants (Σ = 0, cached balances, no negatives, reservations)."

    def handle(self, *args, **options):
        report = ledger_check()
        self.stdout.write(f"sum of balances: {report.total:f}")
        self.stdout.write(f"mismatched balances: {len(report.mismatched)}")
        for account_id, cached, expected in report.mismatched[:MAX_LISTED]:
            self.stdout.write(f"  account #{account_id}: cached {cached:f}, transfers say {expected:f}")
        self.stdout.write(f"negative balances: {len(report.negative)}")
        for account_id in report.negative[:MAX_LISTED]:
            self.stdout.write(f"  account #{account_id}")
        self.stdout.write(f"mismatched reservations: {len(report.unreserved)}")
        for what, pk, cached, expected in report.unreserved[:MAX_LISTED]:
            self.stdout.write(f"  {what} #{pk}: holds {cached:f}, its positions and orders say {expected:f}")
        if not report.ok:
            raise CommandError("the ledger is NOT balanced")
        self.stdout.write(self.style.SUCCESS("ledger OK"))
