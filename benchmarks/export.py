"""Export benchmark: N execution rows (written with COPY through
copytrading.bulk, the hot path's loader) exported as CSV by
``manage.py export_report executions`` to /dev/null, each export in a fresh
process, for N/10 and N rows. Equal peaks show memory does not grow with rows.

Prints one line per size:
    export kind=executions rows=N seconds=… peak_rss_mb=…
"""

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from benchmarks.setup import ROOT, prepare_database

ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "1000000"))
PER_EVENT = 1000  # subscriptions per leader event
BATCH = 50_000
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(milliseconds=100)
EXECUTION_COLUMNS = [
    "event", "subscription_id", "portfolio_id", "outcome", "reason_code", "reason_detail", "leader_quantity",
    "leader_price", "attempted_quantity", "follower_quantity", "follower_price", "price_used", "free_balance",
    "created_at",
]  # fmt: skip
OUTCOMES = [("COPIED", ""), ("SKIPPED", "SUBSCRIPTION_PAUSED"), ("REJECTED", "BELOW_MIN_NOTIONAL")]


def seed_executions(count: int, *, portfolio_id: int = 1, start: datetime = START, step: timedelta = STEP) -> None:
    """``count`` execution rows of one portfolio, ``step`` apart from
    ``start``: PER_EVENT subscriptions per leader event, outcomes in turn."""
    from django.db import transaction

    from copytrading import bulk
    from copytrading.models import Execution, LeaderEvent, LeaderEventStatus

    events = -(-count // PER_EVENT)
    with transaction.atomic():
        event_ids = [
            e.pk
            for e in LeaderEvent.objects.bulk_create(
                [
                    LeaderEvent(
                        portfolio_id=portfolio_id,
                        seq=i + 1,
                        kind="position_open",
                        payload={"symbol": "ETH/USDT:USDT", "side": "buy"},
                        status=LeaderEventStatus.DONE,
                    )
                    for i in range(events)
                ],
                batch_size=5000,
            )
        ]
        for first in range(0, count, BATCH):
            rows = []
            for i in range(first, min(first + BATCH, count)):
                outcome, reason = OUTCOMES[i % 3]
                copied = outcome == "COPIED"
                rows.append(
                    (
                        event_ids[i // PER_EVENT], i % PER_EVENT + 1, portfolio_id, outcome, reason,
                        "" if copied else f"{reason.lower()} at 3,012.5", Decimal("1.5"), Decimal("3012.5"),
                        Decimal("0.0375") if copied else Decimal("0.00049"), Decimal("0.037") if copied else None,
                        Decimal("3013.1") if copied else None, Decimal("3012.5"), Decimal(1000 + i % 997),
                        start + i * step,
                    )
                )  # fmt: skip
            bulk.insert_rows(Execution, EXECUTION_COLUMNS, rows)


def measure(rows: int) -> tuple[int, float, float, float]:
    """Export the first ``rows`` rows in a fresh process: (rows written,
    seconds exporting, seconds with the process's start, peak RSS in MB)."""
    until = START + rows * STEP
    command = [sys.executable, "manage.py", "export_report", "executions", "--since", START.isoformat(),
               "--until", until.isoformat(), "--output", os.devnull, "--skip-checks"]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"export_report failed: {stderr}")
    written, seconds = re.findall(r"([\d,]+) rows in ([\d.]+) s", stderr)[-1]
    return int(written.replace(",", "")), float(seconds), total, usage.ru_maxrss / 1024  # Linux: kilobytes


def main() -> int:
    prepare_database()
    started = time.perf_counter()
    seed_executions(ROWS)
    print(f"# seeded {ROWS:,} executions in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    for rows in (ROWS // 10, ROWS):
        written, seconds, total, peak = measure(rows)
        assert written == rows, (written, rows)
        print(
            f"export kind=executions rows={rows} seconds={seconds:.1f} peak_rss_mb={peak:.0f} (process {total:.1f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
