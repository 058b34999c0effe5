"""`make bench`: every benchmark, each in its own process and fresh database."""

import sys

from benchmarks.setup import run_module

BENCHMARKS = ["benchmarks.fanout", "benchmarks.watchdog"]

if __name__ == "__main__":
    failed = [m for m in BENCHMARKS if run_module(m) != 0]
    sys.exit(1 if failed else 0)
