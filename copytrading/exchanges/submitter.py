"""The submitter: sends the orders the engine decided (``ExchangeOrder`` rows,
``pending``) to the exchanges, concurrently and exactly once, and records
every answer through ``outcomes.record_outcomes``.

- **Claimed before sent.** Several submitters may run at once (the task, its
  retry, the beat sweep, two workers). Rows are claimed with ``SELECT … FOR
  UPDATE SKIP LOCKED`` and, in the same committed transaction, marked
  ``sent`` with ``attempts + 1``, ``submitted_at`` (the first time) and a
  lease (``next_attempt_at``) — all before any network call. So a row that is
  ``sent`` may be on the exchange, whoever sent it, even a process killed
  with SIGKILL: its next attempt looks it up by client order id first and
  sends it only if the exchange does not have it (sending.py).
- **Concurrent, bounded.** A batch is cut into lanes (an account's orders,
  at most ``EXCHANGE_ACCOUNT_CONCURRENCY`` lanes per account) run on a
  per-exchange pool of ``EXCHANGE_SUBMIT_CONCURRENCY`` threads; answers are
  recorded every ``RECORD_EVERY_SECONDS`` while the others are in flight, and
  the lease of what is still in flight is renewed.
- **Retried, then given up.** A retryable failure puts the row back with
  ``next_attempt_at`` = the back-off (at least the exchange's
  ``Retry-After``; an ambiguous one at least the request's validity window
  after it was sent); the call retries its own rows until they are final or
  its budget (``EXCHANGE_SUBMIT_BUDGET_SECONDS``) is spent, leaving the rest
  to the sweep. After ``EXCHANGE_SUBMIT_MAX_ATTEMPTS`` an order that may be on
  the exchange gets ``LOOKUPS_AFTER_LAST`` look-ups (never another send);
  then it is ``failed`` with ``EXCHANGE_UNAVAILABLE``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Min, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from copytrading import enqueue, failures
from copytrading.bulk import update_rows
from copytrading.errors import DomainError
from copytrading.exchanges import errors, redact, sending
from copytrading.exchanges.models import ExchangeAccount, ExchangeAccountStatus, ExchangeOrder
from copytrading.exchanges.models import ExchangeOrderStatus as S
from copytrading.exchanges.outcomes import OrderOutcome, record_outcomes
from copytrading.exchanges.sending import Answer, ClientConfig, Job, Lane
from copytrading.outages import dispatch_on_commit, is_outage

log = logging.getLogger(__name__)

SUBMIT_TASK = "exchange.submit"
SWEEP_TASK = "exchange.submit_sweep"
# Answers are written in batches this often while other orders are in flight.
RECORD_EVERY_SECONDS = 0.05
# Look-ups (never sends) an order that may be on the exchange gets after its last attempt.
LOOKUPS_AFTER_LAST = 2


@dataclass
class SubmitReport:
    """What one ``submit_orders`` call did (counts of rows)."""

    claimed: int = 0  # distinct rows this call took at least once
    attempts: int = 0  # attempts made (a row retried counts once per attempt)
    acknowledged: int = 0  # placed and acknowledged (filled ones included)
    filled: int = 0
    rejected: int = 0
    failed: int = 0
    retried: int = 0  # attempts that ended in a retry
    left: int = 0  # still `sent` when the call ended: the sweep carries on


def submit_after_commit(order_ids: list[int]) -> None:
    """Queue ``exchange.submit`` for these rows once the current transaction
    commits (the engine's chunk calls this once per chunk). A lost dispatch
    is redelivered by the sweep."""
    ids = list(order_ids)
    if ids:
        dispatch_on_commit(
            lambda: enqueue.task(SUBMIT_TASK).delay(ids),
            what=f"{SUBMIT_TASK} of {len(ids)} exchange orders (the submit sweep sends them otherwise)",
        )


# --- claiming --------------------------------------------------------------------------


def _due(now: datetime, *, sweep: bool) -> Q:
    time_come = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    sent_due = Q(status=S.SENT) & time_come
    pending = Q(status=S.PENDING) & time_come
    if sweep:  # a pending row just committed is its own task's, for a moment
        grace = timedelta(seconds=settings.EXCHANGE_SUBMIT_SWEEP_GRACE_SECONDS)
        pending &= Q(decided_at__lte=now - grace)
    return pending | sent_due


def _claim(order_ids: set[int] | None, *, sweep: bool) -> list[tuple[ExchangeOrder, bool]]:
    """Take the due rows (of ``order_ids``, or any), mark them ``sent`` with
    ``attempts + 1`` and a lease, and commit — before anything is sent.
    Returns (row as it is now, whether it was already ``sent`` before)."""
    now = timezone.now()
    with transaction.atomic():
        rows = ExchangeOrder.objects.filter(_due(now, sweep=sweep))
        if order_ids is not None:
            rows = rows.filter(pk__in=order_ids)
        # Rows another submitter holds are skipped, not waited for; a row
        # counts as claimed only through this lock (on PostgreSQL).
        taken = list(
            rows.select_for_update(skip_locked=True, of=("self",))
            .order_by("pk")
            .values("pk", "status")[: settings.EXCHANGE_SUBMIT_BATCH]
        )
        if not taken:
            return []
        pks = [row["pk"] for row in taken]
        lease = now + timedelta(seconds=settings.EXCHANGE_SUBMIT_LEASE_SECONDS)
        ExchangeOrder.objects.filter(pk__in=pks).update(
            status=S.SENT,
            attempts=F("attempts") + 1,
            submitted_at=Coalesce("submitted_at", Value(now)),
            next_attempt_at=lease,
            updated_at=now,
        )
    was_sent = {row["pk"]: row["status"] == S.SENT for row in taken}
    claimed = ExchangeOrder.objects.select_related("exchange_account").filter(pk__in=pks).order_by("pk")
    return [(row, was_sent[row.pk]) for row in claimed]


def _job(row: ExchangeOrder, was_sent: bool) -> Job:
    return Job(
        pk=row.pk,
        client_order_id=row.client_order_id,
        symbol=row.symbol,
        side=row.side,
        order_type=row.order_type,
        quantity=row.quantity,
        price=row.price,
        reduce_only=row.reduce_only,
        attempt=row.attempts,
        was_sent=was_sent,
        lookup_only=row.attempts > settings.EXCHANGE_SUBMIT_MAX_ATTEMPTS,
    )


# --- sending ---------------------------------------------------------------------------

_pools_lock = threading.Lock()
_pools: dict[tuple[int, str, int], ThreadPoolExecutor] = {}


def _pool(exchange: str) -> ThreadPoolExecutor:
    """The process's threads for ``exchange`` (a forked worker builds its own)."""
    size = max(1, settings.EXCHANGE_SUBMIT_CONCURRENCY)
    key = (os.getpid(), exchange, size)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"submit-{exchange}")
    return pool


def _refusal(account: ExchangeAccount) -> tuple[str, str] | None:
    """Why no order may be sent with this account's key, if it may not."""
    if account.status == ExchangeAccountStatus.AUTH_FAILED:
        return "EXCHANGE_AUTH_FAILED", "The exchange refused this account's API key at its last validation."
    if account.status == ExchangeAccountStatus.CAN_WITHDRAW:
        return "EXCHANGE_KEY_CAN_WITHDRAW", "This account's API key may withdraw funds; no order is sent with it."
    return None


def _lanes(claimed: list[tuple[ExchangeOrder, bool]]) -> tuple[list[Lane], list[Answer]]:
    """The lanes to run, and the answers known without the network (an
    account whose key may not trade, credentials this server cannot read)."""
    by_account: dict[int, list[Job]] = defaultdict(list)
    accounts: dict[int, ExchangeAccount] = {}
    for row, was_sent in claimed:
        by_account[row.exchange_account_id].append(_job(row, was_sent))
        accounts[row.exchange_account_id] = row.exchange_account
    from copytrading.exchanges.services import credentials_of  # services import the accounts module, which is heavy

    per_account = max(1, settings.EXCHANGE_ACCOUNT_CONCURRENCY)
    lanes_by_round: list[list[Lane]] = [[] for _ in range(per_account)]
    known: list[Answer] = []
    for account_id, jobs in by_account.items():
        account = accounts[account_id]
        refusal = _refusal(account)
        if refusal is not None:
            for job in jobs:  # one that may be on the exchange is still looked up
                if job.was_sent:  # still to be looked up
                    known.append(Answer(job, None, 0.0, False, 0.0, refusal[0]))
                else:
                    known.append(Answer(job, sending.rejected(job, *refusal)))
            continue
        try:
            credentials = credentials_of(account)
        except DomainError as exc:
            known.extend(Answer(job, None, 0.0, False, 0.0, exc.code, unplaced=not job.was_sent) for job in jobs)
            continue
        for index in range(min(per_account, len(jobs))):
            lane_jobs = tuple(jobs[index::per_account])
            lanes_by_round[index].append(Lane(account.exchange, credentials, lane_jobs))
    # Every account's first lane before any account's second.
    return [lane for lanes in lanes_by_round for lane in lanes], known


def _record(answers: list[Answer], report: SubmitReport) -> None:
    """Write a batch of answers: outcomes through ``record_outcomes``; retries
    as their next attempt's time; the exhausted as ``failed``."""
    outcomes: list[OrderOutcome] = [a.outcome for a in answers if a.outcome is not None]
    retries: list[ExchangeOrder] = []
    unsent: list[ExchangeOrder] = []  # certainly not at the exchange: back to pending
    now = timezone.now()
    wall = time.time()
    last = settings.EXCHANGE_SUBMIT_MAX_ATTEMPTS
    for answer in answers:
        if answer.outcome is not None:
            continue
        job = answer.job
        may_be_there = not answer.unplaced and (job.was_sent or answer.ambiguous)
        if job.attempt >= last + (LOOKUPS_AFTER_LAST if may_be_there else 0):
            outcomes.append(sending.failed(job, f"No answer from the exchange after {job.attempt} attempts."))
            continue
        delay = max(
            answer.retry_after,
            sending.backoff_seconds(
                job.attempt, settings.EXCHANGE_SUBMIT_BACKOFF_SECONDS, settings.EXCHANGE_SUBMIT_MAX_BACKOFF_SECONDS
            ),
        )
        if answer.ambiguous:  # a late copy of the lost request must be refused by the exchange first
            delay = max(delay, answer.sent_at + settings.EXCHANGE_ORDER_RECV_WINDOW_SECONDS - wall)
        retry = ExchangeOrder(pk=job.pk, next_attempt_at=now + timedelta(seconds=delay), updated_at=now)
        (unsent if answer.unplaced else retries).append(retry)
        report.retried += 1
    update_rows(ExchangeOrder, ["next_attempt_at", "updated_at"], [(r.pk, r.next_attempt_at, now) for r in retries])
    for row in unsent:
        # Only if nobody moved it meanwhile (an order is never made pending
        # again once an outcome was recorded).
        ExchangeOrder.objects.filter(pk=row.pk, status=S.SENT).update(
            status=S.PENDING, next_attempt_at=row.next_attempt_at, updated_at=now
        )
    if outcomes:
        for _, outcome in _record_isolated(outcomes):
            if outcome.status in (S.ACKNOWLEDGED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED):
                report.acknowledged += 1
            report.filled += outcome.status == S.FILLED
            report.rejected += outcome.status == S.REJECTED
            report.failed += outcome.status == S.FAILED


def _record_isolated(outcomes: list[OrderOutcome]) -> list[tuple[ExchangeOrder, OrderOutcome]]:
    """``record_outcomes`` for a batch; if applying it raises (a fill the
    engine cannot take: a ledger constraint, a bug), each outcome is recorded
    on its own, and one that still cannot be applied ends ``failed``
    (``EXCHANGE_APPLY_FAILED``, reported as a job error): its event completes
    and the reconciliation finds whatever it left on the exchange. One bad
    answer never rolls back the batch's others, nor comes back every sweep."""
    try:
        return record_outcomes(outcomes)
    except Exception as exc:
        if is_outage(exc):
            raise
    moved = []
    for outcome in outcomes:
        try:
            moved += record_outcomes([outcome])
        except Exception as exc:
            if is_outage(exc):
                raise
            failures.failure_report(task=SUBMIT_TASK, arguments={"client_order_id": outcome.client_order_id}, exc=exc)
            message = f"The exchange's answer ({outcome.status}) could not be applied: {type(exc).__name__}."
            moved += record_outcomes(
                [OrderOutcome(outcome.client_order_id, S.FAILED, outcome.at, outcome.exchange_order_id,
                              outcome.filled_quantity, outcome.average_price, errors.APPLY_FAILED, message)]
            )  # fmt: skip
    return moved


def _renew(pks: set[int]) -> None:
    """Extend the lease of rows still in flight (a long batch)."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.EXCHANGE_SUBMIT_LEASE_SECONDS)
    ExchangeOrder.objects.filter(pk__in=pks, status=S.SENT).update(next_attempt_at=lease, updated_at=now)


def _answers_of(future: Future, lane: Lane) -> list[Answer]:
    """A lane's answers; a lane that raised (a bug: ``place`` answers every
    exchange error) is retried, its orders' fate unknown."""
    try:
        return future.result()
    except Exception:
        log.exception("a submit lane of %s raised; its %d orders are retried", lane.exchange, len(lane.jobs))
        return [Answer(job, None, 1.0, False, 0.0, "LaneError") for job in lane.jobs]


def _config() -> ClientConfig:
    return ClientConfig(
        url_override=settings.EXCHANGE_URL_OVERRIDE or "",
        timeout_seconds=settings.EXCHANGE_SUBMIT_TIMEOUT_SECONDS,
        recv_window_seconds=settings.EXCHANGE_ORDER_RECV_WINDOW_SECONDS,
    )


def _round(claimed: list[tuple[ExchangeOrder, bool]], report: SubmitReport) -> None:
    """One attempt at every claimed row, concurrently; answers recorded as they come."""
    report.attempts += len(claimed)
    lanes, known = _lanes(claimed)
    if known:
        _record(known, report)
    config = _config()
    ttl = settings.EXCHANGE_MARKETS_TTL_SECONDS
    futures: dict[Future, Lane] = {
        _pool(lane.exchange).submit(sending.run_lane, lane, config, ttl): lane for lane in lanes
    }
    in_flight = set(futures)
    lease = settings.EXCHANGE_SUBMIT_LEASE_SECONDS
    renew_at = time.monotonic() + lease / 3
    while in_flight:
        done, in_flight = wait(in_flight, timeout=lease / 6, return_when=FIRST_COMPLETED)
        # Let the answers arriving together be written together.
        if in_flight:
            more, in_flight = wait(in_flight, timeout=RECORD_EVERY_SECONDS)
            done |= more
        answers = [answer for future in done for answer in _answers_of(future, futures[future])]
        if answers:
            _record(answers, report)
        if in_flight and time.monotonic() >= renew_at:
            _renew({job.pk for future in in_flight for job in futures[future].jobs})
            renew_at = time.monotonic() + lease / 3


# --- the entry point --------------------------------------------------------------------


def submit_orders(order_ids: list[int] | None = None) -> SubmitReport:
    """Send the given exchange orders (or, with None, every due one: pending,
    or sent and past its ``next_attempt_at``) and record the answers; retry
    them until final or the budget is spent. Rows that are final, or held by
    another submitter, are left alone. Safe to run any number of times at once."""
    report = SubmitReport()
    sweep = order_ids is None
    mine: set[int] | None = None if sweep else set(order_ids or [])
    if mine is not None and not mine:
        return report
    deadline = time.monotonic() + settings.EXCHANGE_SUBMIT_BUDGET_SECONDS
    seen: set[int] = set()
    while True:
        claimed = _claim(mine, sweep=sweep and mine is None)
        if claimed:
            seen.update(row.pk for row, _ in claimed)
            if mine is None:  # a sweep follows through on what it took
                mine = {row.pk for row, _ in claimed}
            _round(claimed, report)
        if mine is None:
            break
        unfinished = ExchangeOrder.objects.filter(pk__in=mine, status__in=(S.PENDING, S.SENT))
        next_due = unfinished.aggregate(at=Min(Coalesce("next_attempt_at", "decided_at")))["at"]
        if next_due is None:
            break
        wait_seconds = max(0.0, (next_due - timezone.now()).total_seconds())
        if time.monotonic() + wait_seconds > deadline:
            report.left = unfinished.count()
            break
        if not claimed or wait_seconds > 0:
            time.sleep(min(max(wait_seconds, 0.05), 1.0))
    report.claimed = len(seen)
    if report.claimed:
        log.info("exchange orders submitted: %s", report)
    return report


# --- orders the exchange took but has not finished ---------------------------------------

# How long an acknowledged or partly filled order is left before it is read
# again (a market order answered NEW, a leader's limit): its portfolio's next
# event waits for it, so nothing may leave it unread.
FOLLOW_UP_AFTER = timedelta(seconds=2)
FOLLOW_UP_BATCH = 500


def follow_up_unfinished() -> int:
    """Read again, by client order id, the orders an exchange acknowledged but
    has not finished, and record what it says now (the sweep calls this).
    Read-only at the exchange: an order it acknowledged is never resent; one
    it no longer knows is left to the reconciliation. Returns how many moved."""
    from copytrading.exchanges.services import credentials_of

    now = timezone.now()
    with transaction.atomic():
        rows = list(
            ExchangeOrder.objects.select_related("exchange_account")
            .filter(status__in=[S.ACKNOWLEDGED, S.PARTIALLY_FILLED], updated_at__lte=now - FOLLOW_UP_AFTER)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("updated_at")[:FOLLOW_UP_BATCH]
        )
        if not rows:
            return 0
        ExchangeOrder.objects.filter(pk__in=[r.pk for r in rows]).update(updated_at=now)
    outcomes: list[OrderOutcome] = []
    config = _config()
    for row in rows:
        exchange = row.exchange_account.exchange
        try:
            creds = credentials_of(row.exchange_account)
            with redact.holding(creds.api_key, creds.secret, creds.passphrase):
                client = sending.thread_client(exchange, config)
                sending.share_markets(client, exchange, config, settings.EXCHANGE_MARKETS_TTL_SECONDS)
                client.apiKey, client.secret, client.password = creds.api_key, creds.secret, creds.passphrase or None
                try:
                    order = client.fetch_order(None, row.symbol, {"clientOrderId": row.client_order_id})
                finally:
                    client.apiKey = client.secret = ""
                    client.password = None
        except Exception as exc:  # noqa: BLE001  unknown here: read again at the next sweep
            log.warning("follow-up of %s: %s", row.client_order_id, type(exc).__name__)
            continue
        outcomes.append(sending.outcome_of(_job(row, True), order, timezone.now()))
    return len(record_outcomes(outcomes)) if outcomes else 0
