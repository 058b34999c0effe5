"""seed_demo benchmark: the command an operator runs, ``manage.py seed_demo
--followers N``, timed as a whole (process start, the one password hash,
the followers a batch per transaction, the statistics refresh) on a fresh
PostgreSQL database; then the same command again, which must create nothing.
The ledger is checked after.

Prints one line:
    seed_demo followers=N seconds=… rerun_seconds=…
"""

import os
import subprocess
import sys
import time

from benchmarks.setup import ROOT, prepare_database

FOLLOWERS = int(os.environ.get("BENCH_SEED_FOLLOWERS", "10000"))


def _timed_seed() -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--followers", str(FOLLOWERS), "--quiet"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, done.stdout


def main() -> int:
    prepare_database()
    from copytrading.ledger import ledger_check
    from followers.models import Subscription

    seconds, _ = _timed_seed()
    count = Subscription.objects.count()
    rerun, out = _timed_seed()
    assert "nothing created" in out, out
    assert Subscription.objects.count() == count
    assert ledger_check().ok
    print(f"seed_demo followers={FOLLOWERS} seconds={seconds:.1f} rerun_seconds={rerun:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
