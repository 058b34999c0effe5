"""Every metric of ours, defined here and nowhere else (docs/operations.md, "Metrics").

Recording is cheap on the hot paths: one ``observe`` per chunk, counters
incremented with a chunk's aggregated counts, never per follower row.
Counts that describe committed work are recorded after the commit
(``copytrading.outages.after_commit``): a chunk rolled back and retried
counts once.

Workers and the web are separate processes: with ``PROMETHEUS_MULTIPROC_DIR``
set (services mode sets it under VAR_DIR; ``run_stack`` wipes it at start)
prometheus_client keeps each process's values in a file of that directory, and
the web's ``/metrics`` sums them (docs/decisions.md, "Metrics across
processes"). Two gauges are read at scrape time instead (``ScrapeGauge``):
the outbox lag and the unacknowledged job errors, which live in the database.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from copytrading.observability import multiproc

# Host-qualified file names, before our metrics exist (config/settings.py does
# it first in a Django process; this is for a process importing us without it).
multiproc.install()

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Fan-out: a paper event of 10,000 followers takes ~1-2 s here; the alert is at p95 > 3 s.
FANOUT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# A chunk of 500 followers: ~60 ms here.
CHUNK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A watchdog tick must end well within its 30 s slot; the alert is at 2 s.
TICK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

FANOUT_SECONDS = Histogram(
    "copytrading_fanout_seconds",
    "Leader event accepted (recorded) to its last chunk done (the event complete).",
    buckets=FANOUT_BUCKETS,
)
EXECUTIONS = Counter(
    "copytrading_executions",
    "Follower executions written, by outcome (copied, skipped, rejected, failed) and reason code.",
    ["outcome", "reason_code"],
)
CHUNK_SECONDS = Histogram(
    "copytrading_chunk_seconds",
    "Time one propagation chunk task takes (decisions and writes of up to FANOUT_CHUNK_SIZE followers).",
    buckets=CHUNK_BUCKETS,
)
WATCHDOG_TICK_SECONDS = Histogram(
    "copytrading_watchdog_tick_seconds",
    "Time one watchdog tick task takes on its worker (planning and draining the slot's chunks).",
    buckets=TICK_BUCKETS,
)
WATCHDOG_INTERVENTIONS = Counter(
    "copytrading_watchdog_interventions",
    "Risk interventions the watchdog made, by action (pause, pause_and_close).",
    ["action"],
)
FEE_SETTLED_AMOUNT = Counter(
    "copytrading_fee_settled_amount",
    "Profit share moved out of escrow by fee settlement, in the primary currency, by transfer kind.",
    ["kind"],
)
WEBSOCKET_CONNECTIONS = Gauge(
    "copytrading_websocket_connections",
    "Open live-stream WebSocket connections (accepted, not yet closed), summed over live web processes.",
    multiprocess_mode="livesum",
)
JOB_ERRORS = Counter(
    "copytrading_job_errors",
    "Job errors recorded in the job-error feed, by task and severity.",
    ["task", "severity"],
)


class ScrapeGauge:
    """A gauge whose value is read when ``/metrics`` is scraped, from a source
    the owning app registers at start-up (the core imports no app above it).
    A source that fails leaves the gauge out of that scrape (and logs)."""

    def __init__(self, name: str, documentation: str, label: str | None = None) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        # A number; with a label, {label value: number}.
        self.source: Callable[[], float | Mapping[str, float]] | None = None

    def family(self) -> GaugeMetricFamily | None:
        if self.source is None:
            return None
        try:
            read = self.source()
        except Exception:
            log.warning("metrics: %s could not be read at scrape", self.name, exc_info=True)
            return None
        if self.label is None:
            return GaugeMetricFamily(self.name, self.documentation, value=float(read))
        family = GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
        for key, value in sorted(read.items()):
            family.add_metric([key], float(value))
        return family


OUTBOX_LAG_SECONDS = ScrapeGauge(
    "copytrading_outbox_lag_seconds",
    "Age of the oldest pending leader event (0 when none is pending), read at scrape.",
)
JOB_ERRORS_UNACKNOWLEDGED = ScrapeGauge(
    "copytrading_job_errors_unacknowledged",
    "Job errors staff have not acknowledged (the admin's open list), read at scrape.",
)
HEARTBEAT_AGE_SECONDS = ScrapeGauge(
    "copytrading_heartbeat_age_seconds",
    "Seconds since the last heartbeat of a process kind (worker: the heartbeat task; beat: a tick), read at scrape.",
    label="process",
)
SCRAPE_GAUGES = (OUTBOX_LAG_SECONDS, JOB_ERRORS_UNACKNOWLEDGED, HEARTBEAT_AGE_SECONDS)


class ScrapeCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        for gauge in SCRAPE_GAUGES:
            family = gauge.family()
            if family is not None:
                yield family


# --- recording (called by the engine, the watchdog, fees, the stream, the job-error feed) ---


def executions_record(counts: Mapping[tuple[str, str], int]) -> None:
    """Count a chunk's executions: how many of each (outcome, reason_code),
    one increment per distinct pair."""
    for (outcome, reason_code), count in counts.items():
        EXECUTIONS.labels(outcome, reason_code).inc(count)


def interventions_record(actions: Iterable[str]) -> None:
    for action, count in Tally(actions).items():
        WATCHDOG_INTERVENTIONS.labels(action).inc(count)


def fee_settlements_record(amounts: Iterable[tuple[str, Decimal]]) -> None:
    """``amounts``: (transfer kind, amount) of the transfers a settlement made."""
    totals: dict[str, Decimal] = {}
    for kind, amount in amounts:
        totals[kind] = totals.get(kind, Decimal(0)) + amount
    for kind, total in totals.items():
        FEE_SETTLED_AMOUNT.labels(kind).inc(float(total))


# --- the multiprocess directory -----------------------------------------------------


def multiproc_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def multiproc_dir_reset(path: Path) -> None:
    """Empty ``path`` (the files of processes from an earlier run): called
    once by the stack's supervisor before it starts any process."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def process_exited(pid: int) -> None:
    """A process's live gauges (open WebSocket connections) no longer count.
    ``pid``: a process of this host (its files are named ``<pid>-<host>``)."""
    if multiproc_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(multiproc.process_identifier(pid))


def registry(*, scrape_gauges: bool = True) -> CollectorRegistry:
    """What a scrape reads: every process's values (multiprocess mode) or this
    process's, plus (unless told not to) the gauges read from the database."""
    from prometheus_client import REGISTRY

    if multiproc_dir() is None:
        collected = CollectorRegistry(auto_describe=False)
        collected.register(_Delegate(REGISTRY))
    else:
        from prometheus_client import multiprocess

        collected = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(collected)
    if scrape_gauges:
        collected.register(ScrapeCollector())
    return collected


class _Delegate(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self):
        return self.source.collect()
