"""The watchdog tick (every 30 s) over every watched subscription: the
active ones, and the paused ones whose copy wallet still holds open exposure
(pausing stops new copies, not protection; see followers/risk_hooks.py).

1. **Plan** (once per 30-second slot, whoever comes first): the slot's
   ``WatchdogTick`` row is unique, so a second start of the same slot waits
   for the first planner's commit and then finds the chunks. Planning also
   lifts realized-loss pauses of earlier days (the midnight reset's safety net).
2. **Drain**: any number of workers claim the tick's chunks (up to 5,000
   subscriptions each, by id range) with ``FOR UPDATE SKIP LOCKED``.
3. **Check** a chunk: on PostgreSQL one statement (risk/screen.py) values
   every wallet of the chunk in SQL, stores the peaks that rose and returns
   the few subscriptions that may breach a limit; on SQLite every one of them
   is a candidate. The candidates' wallets are read again and judged by the
   pure rules (risk/rules.py), which alone decide. A constant number of
   queries per chunk either way.
4. **Act**: pauses go through the ``followers`` hook, which switches only
   subscriptions still active under their row lock, and only a subscription
   this transaction paused gets its events, notifications and, for the
   unrealized daily loss limit, its mirrors closed and its spot holdings
   sold; ``position_close`` re-checks each position under its own row lock.
   A paused copy is acted on for the unrealized daily loss limit only (the
   other rules pause, and it is paused): the hook row-locks it if still
   paused, and its risk state is claimed conditionally on the state this
   tick read. So two workers, or two overlapping ticks, never act on one
   subscription twice or close one mirror twice.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from copytrading import bulk, ledger
from copytrading.closing import ForcedSale, accounts_holdings_force_sell
from copytrading.errors import DomainError
from copytrading.models import Position, PositionStatus
from copytrading.notifications.services import Note, notify
from copytrading.observability import record
from copytrading.venues import venue_for_account
from risk import rules, screen, selectors
from risk.hooks import WatchedSubscription, subscription_hooks
from risk.models import RiskEvent, RiskState, Rule, TickStatus, WatchdogChunk, WatchdogTick
from risk.services import (
    daily_reset_apply,
    day_lock,
    follower_message,
    pause_reason,
    utc_day,
    utc_day_start,
)

log = logging.getLogger(__name__)

ZERO = Decimal(0)


def interval_seconds() -> int:
    return int(getattr(settings, "RISK_WATCHDOG_INTERVAL_SECONDS", 30))


def chunk_size_default() -> int:
    return int(getattr(settings, "RISK_WATCHDOG_CHUNK_SIZE", 5000))


def tick_number(moment: datetime) -> int:
    return int(moment.timestamp()) // interval_seconds()


@dataclass
class TickReport:
    tick_id: int
    number: int
    planned: bool  # this call planned the tick (else another worker had)
    chunks: int = 0  # chunks this call processed
    checked: int = 0
    paused: list[int] = field(default_factory=list)
    closed_positions: int = 0


@transaction.atomic
def watchdog_tick_plan(*, now: datetime | None = None, chunk_size: int | None = None) -> tuple[WatchdogTick, bool]:
    """Plan the tick of ``now``'s 30-second slot (idempotent): returns the
    tick and whether this call planned it."""
    now = now or timezone.now()
    number = tick_number(now)
    try:
        with transaction.atomic():
            tick = WatchdogTick.objects.create(number=number, started_at=now)
    except IntegrityError:
        # Another worker planned this slot (on PostgreSQL the insert waited for
        # its commit), so its chunks are there to claim.
        return WatchdogTick.objects.get(number=number), False

    # The midnight reset's safety net: a realized-loss pause from an earlier
    # day that the reset missed (beat was down, say) is lifted within a tick.
    # Checked without a lock first: the reset's lock waits for chunks in flight.
    if RiskState.objects.filter(paused_by_rule=Rule.DAILY_LOSS_REALIZED, paused_day__lt=utc_day(now)).exists():
        daily_reset_apply(now=now)
    # A day of ticks is plenty of history for the back office.
    WatchdogTick.objects.filter(number__lt=number - 86400 // interval_seconds()).delete()

    size = chunk_size or chunk_size_default()
    ids = subscription_hooks().watched_subscription_ids()
    chunks = [
        WatchdogChunk(tick=tick, index=i, first_subscription_id=part[0], last_subscription_id=part[-1])
        for i, part in enumerate(ids[start : start + size] for start in range(0, len(ids), size))
    ]
    WatchdogChunk.objects.bulk_create(chunks)
    tick.chunk_count, tick.subscription_count = len(chunks), len(ids)
    if not chunks:
        tick.completed_at = now
    tick.save(update_fields=["chunk_count", "subscription_count", "completed_at"])
    return tick, True


def watchdog_tick(*, now: datetime | None = None, chunk_size: int | None = None) -> TickReport:
    """Plan ``now``'s tick if nobody has, then work through its chunks until
    none is left to claim. Safe to run on any number of workers at once."""
    tick, planned = watchdog_tick_plan(now=now, chunk_size=chunk_size)
    report = TickReport(tick_id=tick.pk, number=tick.number, planned=planned)
    watchdog_drain(tick_id=tick.pk, report=report)
    return report


def watchdog_drain(*, tick_id: int, report: TickReport | None = None, max_chunks: int | None = None) -> TickReport:
    """Claim and check the tick's pending chunks one at a time, each in its
    own transaction, until none is left (other workers may be draining too)
    or ``max_chunks`` are done."""
    report = report or TickReport(tick_id=tick_id, number=0, planned=False)
    tried: list[int] = []
    while max_chunks is None or len(tried) < max_chunks:
        with transaction.atomic():
            chunk = (
                WatchdogChunk.objects.select_for_update(skip_locked=True)
                .filter(tick_id=tick_id, status=TickStatus.PENDING)
                .exclude(pk__in=tried)
                .order_by("index")
                .first()
            )
            if chunk is None:
                break
            tried.append(chunk.pk)
            try:
                with transaction.atomic():
                    result = _check_range(chunk.first_subscription_id, chunk.last_subscription_id)
            except DatabaseError:
                # A deadlock with a trade on the same wallet, say: the chunk
                # stays pending for another worker of this tick, and the next
                # tick checks these subscriptions anyway.
                log.exception("watchdog chunk %s failed", chunk.pk)
                continue
            chunk.status, chunk.processed_at = TickStatus.DONE, timezone.now()
            chunk.checked, chunk.breaches = result.checked, len(result.paused)
            chunk.save(update_fields=["status", "processed_at", "checked", "breaches"])
        report.chunks += 1
        report.checked += result.checked
        report.paused.extend(result.paused)
        report.closed_positions += result.closed_positions
        _tick_complete(tick_id)
    return report


def _tick_complete(tick_id: int) -> None:
    """Stamp the tick done once its last chunk is (whichever worker gets there)."""
    if not WatchdogChunk.objects.filter(tick_id=tick_id, status=TickStatus.PENDING).exists():
        WatchdogTick.objects.filter(pk=tick_id, completed_at__isnull=True).update(completed_at=timezone.now())


# --- one chunk ------------------------------------------------------------------------


@dataclass
class _RangeResult:
    checked: int = 0
    paused: list[int] = field(default_factory=list)
    closed_positions: int = 0


def _check_range(first_id: int, last_id: int) -> _RangeResult:
    """Check the watched subscriptions with ids in [first_id, last_id] and act
    on every breach. Runs inside the chunk's transaction."""
    day_lock(shared=True)
    # The clock is read under the day lock: a chunk that waited for the
    # midnight reset judges today's realized PnL, not yesterday's.
    now = timezone.now()
    hooks = subscription_hooks()
    if connection.vendor == "postgresql":
        checked, candidates = screen.screen_range(
            first_id, last_id, day_start=utc_day_start(now), margin_call_default=selectors.margin_call_default()
        )
        subs = hooks.watched_subscriptions(first_id, last_id, only=candidates) if candidates else []
    else:
        subs = hooks.watched_subscriptions(first_id, last_id)
        checked = len(subs)
    result = _RangeResult(checked=checked)
    if subs:
        _judge(subs, now, result)
    return result


@dataclass(slots=True)
class _State:
    peak: Decimal | None
    flows: Decimal
    paused_by: str
    paused_at: datetime | None


def _load_states(subs: list[WatchedSubscription]) -> dict[int, _State]:
    """The subscriptions' risk states, creating those seen for the first time.

    Nothing is row-locked: every write back is conditional on the value read
    (``_write_peaks``, ``_clear_pauses``), and acting on a breach is decided
    under the subscription's own row lock, so overlapping ticks stay exact and
    a tick dirties no row it does not change."""
    states = {
        pk: _State(peak, flows, rule, at)
        for pk, peak, flows, rule, at in RiskState.objects.filter(
            pk__any=[s.subscription_id for s in subs]
        ).values_list("pk", "peak_equity", "peak_flows", "paused_by_rule", "paused_at")
    }
    missing = [s for s in subs if s.subscription_id not in states]
    if missing:
        RiskState.objects.bulk_create(
            [
                RiskState(subscription_id=s.subscription_id, copy_account_id=s.account_id, follower_id=s.follower_id)
                for s in missing
            ],
            ignore_conflicts=True,
        )
        for s in missing:
            states[s.subscription_id] = _State(None, ZERO, "", None)
    return states


def _judge(subs: list[WatchedSubscription], now: datetime, result: _RangeResult) -> None:
    """Value the subscriptions' wallets, move their peaks, apply the rules,
    act on the breaches."""
    states = _load_states(subs)
    limits, default_limits = selectors.watchdog_limits([s.subscription_id for s in subs])
    wallets = selectors.watchdog_figures([s.account_id for s in subs], day_start=utc_day_start(now))
    no_wallet = selectors.WalletFigures()

    peak_rows: list[tuple] = []
    cleared: list[tuple[int, datetime | None]] = []
    breaches: dict[int, list[rules.Breach]] = {}
    for sub in subs:
        sid = sub.subscription_id
        wallet = wallets.get(sub.account_id, no_wallet)
        state = states[sid]
        previous_peak = state.peak
        held_by_watchdog = bool(state.paused_by) and not sub.active
        if state.paused_by and sub.active:
            # Paused by the watchdog, active again: the follower (or staff)
            # resumed it. A drawdown stop then counts from today's equity, or
            # resuming could never stick. (A copy still paused is watched for
            # its open exposure: that is no resume.)
            cleared.append((sid, state.paused_at))
            if state.paused_by == Rule.MAX_DRAWDOWN:
                previous_peak = None
        equity = wallet.equity
        sub_limits = limits.get(sid, default_limits)
        peak = None
        # No peak is kept while the watchdog holds the copy paused (as the
        # screening statement does): resuming starts a drawdown stop afresh.
        if sub_limits.max_drawdown_pct is not None and not held_by_watchdog:
            # The peak is tracked under a drawdown stop only: from the tick
            # the stop is set, so setting one never pauses for an old high.
            peak = rules.next_peak(previous_peak, state.flows, wallet.flows, equity)
            if peak != state.peak or wallet.flows != state.flows:
                peak_rows.append((sid, peak, wallet.flows, state.peak, state.flows))
        found = rules.evaluate(
            sub_limits,
            rules.Snapshot(
                equity=equity,
                used_margin=wallet.used_margin,
                unrealized_pnl=wallet.total_unrealized,
                realized_today=wallet.realized_today,
                peak_equity=peak,
            ),
        )
        if not sub.active:
            # A paused copy is already paused: only the rule that also
            # closes acts on it.
            found = [b for b in found if b.action == rules.PAUSE_AND_CLOSE]
        if found:
            breaches[sid] = found

    _write_peaks(peak_rows)
    _clear_pauses(cleared)
    if breaches:
        _act(subs, breaches, states, now, result)


def _write_peaks(rows: list[tuple]) -> None:
    """Store new peaks: rows of (id, peak, flows, peak read, flows read). A row
    another worker changed since it was read is left alone (its next tick
    sees the newer value), so a slower overlapping tick never lowers a peak."""
    if not rows:
        return
    table = connection.ops.quote_name(RiskState._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            columns = [list(column) for column in zip(*rows, strict=True)]
            cursor.execute(
                f"""UPDATE {table} AS t SET peak_equity = v.peak, peak_flows = v.flows
                FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[])
                     AS v(id, peak, flows, old_peak, old_flows)
                WHERE t.subscription_id = v.id AND t.peak_flows = v.old_flows
                  AND t.peak_equity IS NOT DISTINCT FROM v.old_peak""",
                columns,
            )
            return
        cursor.executemany(
            f"""UPDATE {table} SET peak_equity = %s, peak_flows = %s
            WHERE subscription_id = %s AND peak_flows = %s AND peak_equity IS %s""",
            [(peak, flows, pk, old_flows, old_peak) for pk, peak, flows, old_peak, old_flows in rows],
        )


def _clear_pauses(cleared: list[tuple[int, datetime | None]]) -> None:
    """Forget watchdog pauses that someone has lifted: each only if it is still
    the pause that was read (a worker may have paused it again since)."""
    for start in range(0, len(cleared), 500):
        wanted = Q()
        for pk, paused_at in cleared[start : start + 500]:
            wanted |= Q(pk=pk, paused_at=paused_at)
        RiskState.objects.filter(wanted).update(paused_by_rule="", paused_day=None, paused_at=None)


def _act(
    subs: list[WatchedSubscription],
    breaches: dict[int, list[rules.Breach]],
    states: dict[int, _State],
    now: datetime,
    result: _RangeResult,
) -> None:
    """Pause the breached active subscriptions (set-based), hold the breached
    paused ones, close out the wallets of those over their unrealized daily
    loss limit, record and notify."""
    hooks = subscription_hooks()
    by_id = {s.subscription_id: s for s in subs}
    by_reason: dict[str, list[int]] = defaultdict(list)
    paused_before: list[int] = []
    for sid, found in breaches.items():
        if by_id[sid].active:
            by_reason[found[0].rule].append(sid)
        else:
            paused_before.append(sid)
    acted: set[int] = set()
    for rule, ids in by_reason.items():
        acted.update(hooks.pause_subscriptions(ids, pause_reason(rule)))
    if paused_before:
        acted.update(_hold_paused(paused_before, states, now))
    if not acted:
        return
    closed, sales = _force_close(
        [by_id[sid].account_id for sid in sorted(acted) if breaches[sid][0].action == rules.PAUSE_AND_CLOSE]
    )

    events, notes, state_rows = [], [], []
    no_sale = ForcedSale()
    for sid in sorted(set(acted)):
        sub, found = by_id[sid], breaches[sid]
        n_closed = closed.get(sub.account_id, 0)
        sale = sales.get(sub.account_id, no_sale)
        if not sub.active and not n_closed and not sale.sold:
            # A paused copy whose close-out found nothing it could close or
            # sell: what is left is dust (below the step or the minimum, or
            # without a priced pair), recorded when it was closed out. Doing
            # nothing is not an intervention: no event, no notification, or
            # every tick would repeat them until the price recovers.
            acted.discard(sid)
            continue
        dust = {asset: str(quantity) for asset, quantity in sorted(sale.dust.items())}
        for breach in found:
            closes = breach.action == rules.PAUSE_AND_CLOSE
            events.append(
                RiskEvent(
                    subscription_id=sid,
                    rule=breach.rule,
                    measured=breach.measured,
                    threshold=breach.threshold,
                    action=breach.action,
                    closed_positions=n_closed if closes else 0,
                    sold_holdings=sale.sold if closes else 0,
                    dust=dust if closes else {},
                    created_at=now,
                )
            )
        main = found[0]
        data = {
            "subscription_id": sid,
            "rule": main.rule,
            "measured": str(main.measured),
            "threshold": str(main.threshold),
        }
        if main.action == rules.PAUSE_AND_CLOSE:
            data |= {"closed_positions": n_closed, "sold_holdings": sale.sold, "dust": dust}
        _, title, body = follower_message(main, n_closed, sold=sale.sold, dust=dust)
        # One intervention is one pause (claimed above: a replay pauses nothing), keyed by its time.
        key = f"risk:{sid}:{main.rule}:{now.isoformat()}"
        notes.append(Note(sub.follower_id, f"risk.{main.rule}", key, data, title=title, body=body))
        if main.rule in (Rule.DAILY_LOSS_REALIZED, Rule.DAILY_LOSS_UNREALIZED):
            notes.append(
                Note(
                    sub.leader_id,
                    "risk.follower_daily_loss_limit",
                    f"{key}:leader",
                    # The leader learns that a copy paused, not the follower's figures or limits.
                    {"subscription_id": sid, "rule": main.rule},
                    body=f"A follower's copy (subscription {sid}) reached their daily loss limit and is paused.",
                )
            )
        state_rows.append((sid, main.rule, utc_day(now), now))
        result.closed_positions += n_closed
    RiskEvent.objects.bulk_create(events)
    notify(notes, now=now)
    bulk.update_rows(RiskState, ["paused_by_rule", "paused_day", "paused_at"], state_rows)
    result.paused.extend(sorted(acted))
    record.interventions(breaches[sid][0].action for sid in acted)


def _hold_paused(ids: list[int], states: dict[int, _State], now: datetime) -> list[int]:
    """Claim the paused copies over their unrealized daily loss limit: those
    still paused (row-locked by the hook) whose risk state is still the one
    this tick read. An overlapping tick that claimed one first changed its
    state (PostgreSQL re-checks the condition on the updated row), so only
    one of them closes it out. The follower's own pause reason stays: only
    a watchdog pause becomes the unrealized-loss one, which the midnight
    reset never lifts (the realized-loss pause it replaces would be)."""
    unrealized = pause_reason(Rule.DAILY_LOSS_UNREALIZED)
    watchdog_reasons = [pause_reason(rule) for rule in Rule.values]
    held = subscription_hooks().hold_paused_subscriptions(ids, unrealized, watchdog_reasons)
    if not held:
        return []
    for start in range(0, len(held), 500):
        wanted = Q()
        for sid in held[start : start + 500]:
            wanted |= Q(pk=sid, paused_by_rule=states[sid].paused_by, paused_at=states[sid].paused_at)
        RiskState.objects.filter(wanted).update(
            paused_by_rule=Rule.DAILY_LOSS_UNREALIZED, paused_day=utc_day(now), paused_at=now
        )
    # ``now`` is this chunk's own instant: the rows stamped with it are ours.
    return list(
        RiskState.objects.filter(pk__any=held, paused_by_rule=Rule.DAILY_LOSS_UNREALIZED, paused_at=now).values_list(
            "pk", flat=True
        )
    )


def _force_close(account_ids: list[int]) -> tuple[dict[int, int], dict[int, ForcedSale]]:
    """Close out these copy wallets at market: every open position, then the
    spot side (resting orders cancelled, holdings sold down to the step, the
    dust reported; see ``closing.accounts_holdings_force_sell``). Returns how
    many positions each had closed, and each one's sale. ``position_close``
    locks the position and refuses one already closed, so a mirror closed by
    anyone else meanwhile (another worker, the leader's close propagating, a
    stop-loss) is skipped."""
    if not account_ids:
        return {}, {}
    # The order every writer locks in: accounts (by id), positions, orders, holdings.
    ledger.lock_accounts(account_ids)
    closed: dict[int, int] = defaultdict(int)
    positions = (
        Position.objects.filter(account_id__any=account_ids, status=PositionStatus.OPEN)
        .order_by("pk")
        .values_list("pk", "account_id")
    )
    for position_id, account_id in positions:
        try:
            with transaction.atomic():
                venue_for_account(account_id).position_close(account_id=account_id, position_id=position_id)
        except DomainError as exc:
            if exc.code != "POSITION_CLOSED":
                raise
            continue
        closed[account_id] += 1
    sales = accounts_holdings_force_sell(account_ids=account_ids)
    return dict(closed), sales
