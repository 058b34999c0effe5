"""``manage.py reconcile_exchanges [--account ID] [--dry-run]``: compare
exchange-bound accounts with their exchanges now (the periodic task's work,
copytrading/exchanges/reconciliation.py), print each finding and a summary.

Progress over the accounts goes to stderr (a bar on a terminal; --quiet
for none); the findings go to stdout.

Exit code: 0 nothing differs, 1 drift found (repaired or not), 2 cannot run:
an exchange could not be read (that account changed nothing), no such
account, the database unreachable."""

import sys

from django.core.management.base import BaseCommand

from copytrading.exchanges.reconciliation import AccountResult, exchange_accounts_reconcile, repairable
from copytrading.ops.exits import cannot_run, cannot_run_on_outage
from copytrading.ops.progress import Progress, add_quiet_argument


class Command(BaseCommand):
    help = "Compare exchange-bound accounts with their exchange; report drift and repair it where safe."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", type=int, default=None, help="only this ledger account (its id)")
        parser.add_argument("--dry-run", action="store_true", help="compare and print; change nothing")
        add_quiet_argument(parser)

    def handle(self, *args, account: int | None, dry_run: bool, **options) -> None:
        bar = Progress.for_command(self, options, "reconcile_exchanges accounts")

        def progress(i: int, n: int, result: AccountResult) -> None:
            bar.update(i, n)
            if result.error:
                state = f"could not read the exchange ({result.error})"
            else:
                state = f"{len(result.findings)} findings" if result.findings else "in line"
            self.stdout.write(f"[{i}/{n}] account {result.account_id} ({result.exchange}): {state}")
            for f in result.findings:
                new = "new" if f.key in result.new else "known"
                done = result.repairs.get(f.key)
                # A known drift was repaired (or tried) by an earlier run; a missing order every run.
                again = f.key in result.new or f.code == "MISSING_ORDER"
                would = " (would repair)" if dry_run and again and repairable(f, result.account_kind) else ""
                self.stdout.write(
                    f"  {f.code:<18} {f.subject}  [{new}] {f.detail}" + (f" -> {done}" if done else "") + would
                )

        with cannot_run_on_outage("reconcile"), bar:
            report = exchange_accounts_reconcile(account_id=account, dry_run=dry_run, progress=progress)
        if account is not None and not report.accounts:
            raise cannot_run(f"account {account} is not an open account bound to an exchange account")
        self.stdout.write(report.summary())
        if report.exit_code:
            sys.exit(report.exit_code)
