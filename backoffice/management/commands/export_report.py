"""``manage.py export_report KIND --since ISO --until ISO [--output FILE|-]``:
a report as CSV for ops, streamed (constant memory for a million rows), with
progress on stderr (copytrading/ops/progress.py: a bar on a terminal, a line
every few seconds otherwise, none with --quiet). Exit 0, or 2 on bad input
(unknown kind, a time that is not ISO 8601, an empty range, an unknown
leader) or the database unreachable."""

from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from backoffice.reports.kinds import REPORTS, ReportFilterError
from backoffice.reports.stream import csv_blocks
from copytrading.ops.exits import cannot_run_on_outage
from copytrading.ops.progress import Progress, add_quiet_argument

BAD_INPUT = 2


def _moment(text: str, name: str) -> datetime:
    """An ISO 8601 date or time; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise CommandError(
            f"--{name} must be an ISO 8601 date or time (e.g. 2026-12-01 or 2026-12-01T00:00:00Z), not {text!r}.",
            returncode=BAD_INPUT,
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Command(BaseCommand):
    help = "Export a report (executions, fee_accruals, withdrawals, transfers, subscriptions) as CSV."

    def add_arguments(self, parser):
        parser.add_argument("kind", help=f"one of: {', '.join(REPORTS)}")
        parser.add_argument("--since", required=True, help="ISO 8601; rows at or after it (UTC if no offset)")
        parser.add_argument("--until", required=True, help="ISO 8601; rows before it")
        parser.add_argument("--output", default="-", help="a file to write, or - for stdout (default)")
        parser.add_argument("--leader", help="only this leader's rows (username)")
        parser.add_argument("--portfolio", type=int, help="only this portfolio's rows (id)")
        add_quiet_argument(parser)

    def handle(self, *args, **options):
        with cannot_run_on_outage("export"):
            self.export(**options)

    def export(self, *, kind, since, until, output, leader, portfolio, **options):
        report = REPORTS.get(kind)
        if report is None:
            raise CommandError(f"Unknown report {kind!r}; one of: {', '.join(REPORTS)}.", returncode=BAD_INPUT)
        since_at, until_at = _moment(since, "since"), _moment(until, "until")
        if since_at >= until_at:
            raise CommandError("--since must be before --until.", returncode=BAD_INPUT)
        if leader is not None and not get_user_model().objects.filter(username=leader).exists():
            raise CommandError(f"No user named {leader!r}.", returncode=BAD_INPUT)
        try:
            rows = report.queryset(since=since_at, until=until_at, leader=leader, portfolio_id=portfolio)
        except ReportFilterError as exc:
            raise CommandError(str(exc), returncode=BAD_INPUT) from None

        with Progress.for_command(self, options, f"export_report {kind}", unit="rows") as progress:
            blocks = csv_blocks(report, rows, on_rows=progress.update)
            if output == "-":
                self._write(blocks, lambda block: self.stdout.write(block, ending=""))
            else:
                try:
                    stream = open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed below)
                except OSError as exc:
                    raise CommandError(f"Cannot write {output}: {exc.strerror}.", returncode=BAD_INPUT) from None
                with stream:
                    self._write(blocks, stream.write)

    @staticmethod
    def _write(blocks, write) -> None:
        for block in blocks:
            write(block)
