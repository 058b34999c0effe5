"""`make bench`: every benchmark, each in its own process and fresh database.
`python -m benchmarks ranking catalog` runs only the ones named."""

import sys

from benchmarks.setup import run_module

BENCHMARKS = [
    "benchmarks.fanout",
    "benchmarks.watchdog",
    "benchmarks.ranking",
    "benchmarks.catalog",
    "benchmarks.stream",
    "benchmarks.fanout_exchange",
    "benchmarks.export",
    "benchmarks.footprint",
    "benchmarks.seed_demo",
    "benchmarks.partitions",
    "benchmarks.simulate",
]

if __name__ == "__main__":
    wanted = [f"benchmarks.{name}" for name in sys.argv[1:]] or BENCHMARKS
    unknown = [m for m in wanted if m not in BENCHMARKS]
    if unknown:
        sys.exit(
            f"unknown benchmark(s): {', '.join(m.split('.')[1] for m in unknown)}; "
            f"known: {', '.join(m.split('.')[1] for m in BENCHMARKS)}"
        )
    failed = [m for m in wanted if run_module(m) != 0]
    sys.exit(1 if failed else 0)
