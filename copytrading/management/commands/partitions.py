"""``manage.py partitions status|ensure|archive``: the monthly partitions of the
execution log and the ledger's transfers (PostgreSQL; copytrading/partitions.py).

- ``status``: each table's months and the rows in its DEFAULT partition.
- ``ensure [--months-ahead N] [--dry-run]``: create the missing months from
  this one to N ahead (``PARTITION_MONTHS_AHEAD``) and the DEFAULT partitions;
  rows of a new month already in DEFAULT move into it.
- ``archive [--before YYYY-MM] [--dir PATH] [--dry-run] [--table executions]``:
  export each month of executions before ``--before`` (default: this month minus
  ``EXECUTION_RETENTION_MONTHS``; later than that is refused) to
  ``PATH/<partition>.csv.gz`` and drop it. ``--table transfers`` is refused:
  balances are sums of transfers (check_ledger).

Exit codes: 0 done (or nothing to do); 1 refused, or ``status`` found rows in a
DEFAULT partition or a missing month; 2 cannot run (not PostgreSQL, the
database is down, an export failed — nothing was dropped for it).
"""

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from copytrading import partitions


class Command(BaseCommand):
    help = "Monthly partitions of executions and transfers: status, ensure (create ahead), archive (export + drop)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="months and DEFAULT rows of each table")
        ensure = sub.add_parser("ensure", help="create this month's and the next months' partitions")
        ensure.add_argument("--months-ahead", type=int, default=None, help="default PARTITION_MONTHS_AHEAD")
        ensure.add_argument("--dry-run", action="store_true", help="print what would be created; create nothing")
        archive = sub.add_parser("archive", help="export the executions of old months, then drop those months")
        archive.add_argument("--before", default=None, help="YYYY-MM: months before it (default: the retention)")
        archive.add_argument("--dir", default=None, help="where the .csv.gz files go (default ARCHIVE_DIR)")
        archive.add_argument("--table", default="executions", choices=sorted(partitions.TABLES))
        archive.add_argument("--dry-run", action="store_true", help="print what would be archived; change nothing")

    def handle(self, *args, action: str, **options) -> None:
        if not partitions.supported():
            self.stderr.write("partitions exist on PostgreSQL only (this database is SQLite): nothing to do")
            sys.exit(2)
        try:
            code = getattr(self, f"_{action}")(**options)
        except DatabaseError as exc:
            self.stderr.write(f"cannot run: {exc}")
            code = 2
        if code:
            sys.exit(code)

    def _status(self, **options) -> int:
        this_month = partitions.month_of(timezone.now())
        code = 0
        for label, table in partitions.TABLES.items():
            months = partitions.months(table)
            stray = partitions.default_rows(table)
            span = f"{months[0]:%Y-%m} .. {months[-1]:%Y-%m}" if months else "none"
            self.stdout.write(f"{label}: {len(months)} monthly partitions ({span}); {stray} rows in DEFAULT")
            if stray or this_month not in months or partitions.add_months(this_month, 1) not in months:
                self.stdout.write(f"  {label}: needs attention (run `partitions ensure`)")
                code = 1
        return code

    def _ensure(self, *, months_ahead: int | None, dry_run: bool, **options) -> int:
        ahead = settings.PARTITION_MONTHS_AHEAD if months_ahead is None else months_ahead
        if ahead < 0:
            self.stderr.write("--months-ahead must be 0 or more")
            return 1
        planned = partitions.ensure(months_ahead=ahead, dry_run=dry_run)
        for p in planned:
            moved = f" ({p.moved_from_default} rows moved from DEFAULT)" if p.moved_from_default else ""
            self.stdout.write(f"{'would create' if dry_run else 'created'} {p.name}{moved}")
        self.stdout.write(f"{len(planned)} partitions {'to create' if dry_run else 'created'}")
        return 0

    def _archive(self, *, before: str | None, dir: str | None, table: str, dry_run: bool, **options) -> int:
        if partitions.TABLES[table] not in partitions.ARCHIVABLE:
            self.stderr.write(
                f"refused: {table} are the ledger; balances are sums of them (check_ledger), "
                "so dropping a month would unbalance every account it touched"
            )
            return 1
        latest = partitions.add_months(partitions.month_of(timezone.now()), -settings.EXECUTION_RETENTION_MONTHS)
        try:
            month = latest if before is None else partitions.parse_month(before)
        except ValueError as exc:
            self.stderr.write(str(exc))
            return 1
        if month > latest:
            self.stderr.write(
                f"refused: --before {month:%Y-%m} is inside the retention "
                f"(EXECUTION_RETENTION_MONTHS={settings.EXECUTION_RETENTION_MONTHS}: {latest:%Y-%m} at the latest)"
            )
            return 1
        directory = Path(dir) if dir else settings.ARCHIVE_DIR
        try:
            done = partitions.archive(
                table=partitions.TABLES[table],
                before=month,
                directory=directory,
                dry_run=dry_run,
                progress=self.stdout.write,
            )
        except (RuntimeError, OSError) as exc:
            self.stderr.write(f"archive stopped: {exc}")
            return 2
        rows = sum(a.rows for a in done)
        verb = "would archive" if dry_run else "archived"
        self.stdout.write(f"{verb} {len(done)} partitions before {month:%Y-%m}, {rows} rows")
        return 0
