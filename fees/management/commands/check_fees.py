"""Prove the fee books: escrow = unsettled fees, platform = settled platform
parts, each leader profit account = settled leader parts - withdrawals.
Exits non-zero when any of it fails."""

from django.core.management.base import BaseCommand, CommandError

from fees.checks import fee_books_check

MAX_LISTED = 20


class Command(BaseCommand):
    help = "Check the fee books against the ledger (run check_ledger for Σ = 0)."

    def handle(self, *args, **options):
        report = fee_books_check()
        for name in ("escrow", "platform", "charged"):
            ledger_side, books_side = getattr(report, name)
            self.stdout.write(f"{name}: ledger {ledger_side:f}, accruals {books_side:f}")
        self.stdout.write(f"leader profit accounts off: {len(report.leader_mismatches)}")
        for portfolio_id, balance, due in report.leader_mismatches[:MAX_LISTED]:
            self.stdout.write(f"  portfolio {portfolio_id}: balance {balance:f}, earned - withdrawn {due:f}")
        if not report.ok:
            raise CommandError("the fee books do NOT match the ledger")
        self.stdout.write(self.style.SUCCESS("fee books OK"))
