"""Ranking benchmark: one full ranking run (load every active portfolio's
last 30 days, score them together, append the history, update the catalog's
scores) over N portfolios with a trading history, on PostgreSQL.

Prints one line:
    ranking portfolios=N median_ms=…
"""

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from benchmarks.setup import prepare_database

PORTFOLIOS = int(os.environ.get("BENCH_RANKING_PORTFOLIOS", "10000"))
REPETITIONS = int(os.environ.get("BENCH_REPETITIONS", "7"))


def main() -> int:
    prepare_database()
    from benchmarks.portfolio_seed import seed_portfolios
    from portfolios.models import PortfolioScore
    from portfolios.scoring import ranking_run
    from portfolios.stats import stats_refresh

    now = datetime.now(UTC)
    seed_portfolios(PORTFOLIOS, now=now)
    stats_refresh(now=now)  # the catalog rows the run puts scores on: not timed
    timings = []
    for rep in range(REPETITIONS):
        at = now + timedelta(hours=2 * rep)
        started = time.perf_counter()
        scores = ranking_run(now=at)
        timings.append((time.perf_counter() - started) * 1000)
        # Every fifth portfolio traded only more than 30 days ago.
        assert len(scores) == PORTFOLIOS - -(-PORTFOLIOS // 5), len(scores)
    assert PortfolioScore.objects.count() == REPETITIONS * len(scores)
    print(f"ranking portfolios={PORTFOLIOS} median_ms={statistics.median(timings):.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
