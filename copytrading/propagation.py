"""The propagation engine: leader event → every follower, set-based.

1. ``event_start`` claims an event (conditional update), cuts the portfolio's
   subscriptions into id-range chunks and records one checkpoint per chunk,
   in one transaction.
2. ``chunk_propagate`` loads a chunk's followers, wallets, mirrors and
   holdings in a constant number of queries, decides every follower in pure
   Python and writes all orders, positions, transfers and execution rows in
   one transaction. A replay finds the checkpoint done (or the execution rows
   present) and does nothing.
3. The last chunk to finish completes the event and dispatches the
   portfolio's next event: events of one portfolio apply in sequence order.
4. A chunk that raises (not an outage) is bisected until the follower that
   makes it raise is alone: that follower gets a ``FAILED`` execution row and
   a job-error report (``copytrading.failures``), the others their normal
   rows, and the event completes, so one poisoned follower never holds up
   the portfolio's later events.

The core does not import the followers app: it reads subscriptions through a
``TargetSource`` that the followers app registers at start-up.
"""

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from copytrading import decisions, ledger, live, trade_math
from copytrading.chunk_writer import ChunkWriter, MirrorOrder, leader_fraction
from copytrading.decisions import MarketView, MirrorOrderView, MirrorView, TargetView
from copytrading.enqueue import dispatch
from copytrading.events import next_pending_event
from copytrading.exchanges.models import EXCHANGE_ORDER_FINAL, ExchangeOrder
from copytrading.failures import failure_report
from copytrading.leader_events import (
    EventPayloadError,
    FillEvent,
    LeaderEventData,
    LimitCancelled,
    LimitRepriced,
    PositionClose,
    PositionOpen,
    PositionReduce,
    TpslSet,
)
from copytrading.matching import constraints_of
from copytrading.models import (
    ChunkStatus,
    Execution,
    Holding,
    Instrument,
    LeaderEvent,
    LeaderEventStatus,
    Order,
    Position,
    PositionStatus,
    PropagationChunk,
)
from copytrading.money import ZERO
from copytrading.observability import record
from copytrading.outages import dispatch_on_commit, is_outage
from copytrading.venue import PositionState

log = logging.getLogger(__name__)


class TargetSource(Protocol):
    def subscription_ids(self, portfolio_id: int) -> list[int]:
        """Ids of the subscriptions an event can reach (active or paused), ascending."""

    def load(self, portfolio_id: int, first_id: int, last_id: int) -> list[TargetView]:
        """The reachable subscriptions with ids in [first_id, last_id]: one query."""

    def pretrade_gate(self, targets: list[TargetView]) -> decisions.PreTradeCheck:
        """The pre-trade risk limits of these targets, loaded set-based (one or
        two queries): the risk app's checks, reached without importing it."""


_source: TargetSource | None = None


def register_target_source(source: TargetSource) -> None:
    global _source
    _source = source


def target_source() -> TargetSource:
    if _source is None:
        raise RuntimeError("no TargetSource registered (is the followers app installed?)")
    return _source


@dataclass(frozen=True, slots=True)
class ExecutionOutcome:
    """One follower's result of an event, as execution listeners receive it."""

    subscription_id: int
    outcome: str  # decisions.COPIED, SKIPPED, REJECTED, FAILED
    reason_code: str


# (event, outcomes of one chunk): called in the chunk's transaction, once per
# chunk, with every follower it served. It must cost nothing when nothing in
# the list concerns it and a constant number of queries otherwise (the
# followers app registers the notifications of copy errors this way).
ExecutionListener = Callable[[LeaderEvent, list[ExecutionOutcome]], None]
_execution_listeners: list[ExecutionListener] = []
# Listeners registered as never querying the database: called without a
# savepoint (two round trips fewer per chunk each).
_listeners_without_queries: set[ExecutionListener] = set()


def register_execution_listener(listener: ExecutionListener, *, queries: bool = True) -> None:
    """``queries=False`` promises that ``listener`` never touches the
    database (it tallies metrics, records what changed for after the
    commit): it then runs without a savepoint, as it has nothing to roll
    back."""
    if listener not in _execution_listeners:
        _execution_listeners.append(listener)
    if not queries:
        _listeners_without_queries.add(listener)


def _tell_execution_listeners(event: LeaderEvent, outcomes: list[ExecutionOutcome]) -> None:
    """Tell the listeners (notifications) what the chunk decided, in its
    transaction. A listener that raises is rolled back to its savepoint and
    logged: bookkeeping about copies never stops the copies themselves."""
    if not outcomes:
        return
    for listener in _execution_listeners:
        try:
            if listener in _listeners_without_queries:
                listener(event, outcomes)
            else:
                with transaction.atomic():
                    listener(event, outcomes)
        except Exception as exc:
            if is_outage(exc):
                raise
            log.exception("execution listener %r failed on event %s", listener, event.pk)


# Other writers of execution rows (the exchange venue's applier) tell the
# same listeners.
tell_execution_listeners = _tell_execution_listeners


# --- events -----------------------------------------------------------------


def _blocked_by_earlier(event: LeaderEvent) -> bool:
    return (
        LeaderEvent.objects.filter(portfolio_id=event.portfolio_id, seq__lt=event.seq)
        .exclude(status=LeaderEventStatus.DONE)
        .exists()
    )


def event_start(event_id: int) -> list[int]:
    """Claim the event and checkpoint its chunks; returns the chunk ids to run.

    An event whose predecessor is unfinished waits: the predecessor dispatches
    it on completion (and the outbox relay is the safety net)."""
    with transaction.atomic():
        event = LeaderEvent.objects.filter(pk=event_id).first()
        if event is None or event.status != LeaderEventStatus.PENDING:
            return []
        if _blocked_by_earlier(event):
            return []
        claimed = LeaderEvent.objects.filter(pk=event_id, status=LeaderEventStatus.PENDING).update(
            status=LeaderEventStatus.PROPAGATING, started_at=timezone.now()
        )
        if not claimed:
            return []  # another worker got it first
        ids = target_source().subscription_ids(event.portfolio_id)
        size = settings.FANOUT_CHUNK_SIZE
        chunks = [
            PropagationChunk(event_id=event_id, index=n, first_subscription_id=part[0], last_subscription_id=part[-1])
            for n, part in enumerate(ids[i : i + size] for i in range(0, len(ids), size))
        ]
        PropagationChunk.objects.bulk_create(chunks)
        chunk_ids = [c.pk for c in chunks]
    if not chunk_ids:
        event_complete(event_id)
    return chunk_ids


def event_complete(event_id: int, *, dispatch_after_commit: bool = False) -> bool:
    """Mark the event done once no chunk is pending and none of its orders
    is still unconfirmed at an exchange; dispatch the next one.

    An event whose copies went to exchanges is not done until each of their
    orders is final (filled, cancelled, rejected or failed: the submitter
    gives up after its attempts, so none waits forever): the portfolio's
    next event must be decided on the mirrors these fills make (a close
    decided before its open filled would find no mirror). The applier of
    their outcomes completes it (``events_settle``); an event without
    exchange copies completes as before."""
    if PropagationChunk.objects.filter(event_id=event_id, status=ChunkStatus.PENDING).exists():
        return False
    if ExchangeOrder.objects.filter(leader_event_id=event_id).exclude(status__in=EXCHANGE_ORDER_FINAL).exists():
        return False
    done = LeaderEvent.objects.filter(pk=event_id, status=LeaderEventStatus.PROPAGATING).update(
        status=LeaderEventStatus.DONE, completed_at=timezone.now()
    )
    if done:
        portfolio_id, accepted_at = LeaderEvent.objects.values_list("portfolio_id", "created_at").get(pk=event_id)
        record.fanout_done(event_id, accepted_at)
        nxt = next_pending_event(portfolio_id)
        if nxt is not None and nxt.status == LeaderEventStatus.PENDING:
            if dispatch_after_commit:
                pk = nxt.pk
                dispatch_on_commit(lambda: dispatch(pk), what=f"leader event {pk} (the outbox relay redelivers)")
            else:
                dispatch(nxt.pk)
    return bool(done)


def events_settle(event_ids: list[int]) -> int:
    """Complete the events whose last exchange order has just become final
    (called by the exchange venue's applier, in its transaction). The
    events' rows are locked first, so of two appliers finalizing an event's
    last two orders at once, the second to get the lock sees the first's
    committed and completes it. The next events are dispatched after
    commit (before it, they would find this one unfinished). Returns how
    many completed."""
    locked = list(
        LeaderEvent.objects.select_for_update()
        .filter(pk__in=sorted(set(event_ids)), status=LeaderEventStatus.PROPAGATING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return sum(event_complete(pk, dispatch_after_commit=True) for pk in locked)


# --- chunks -----------------------------------------------------------------


def _market_view(instrument: Instrument, reference: Decimal | None = None) -> MarketView:
    # An instrument synced from an exchange has no mark until its feed runs:
    # the leader's own fill price (``reference``) is then the best price there is.
    return market_view_at(instrument, instrument.mark_price or reference)


def market_view_at(instrument: Instrument, mark: Decimal) -> MarketView:
    """What a decision reads of ``instrument`` at ``mark``: the fan-out's
    market at the current mark, a replay's at a recorded one (followers/replay)."""
    spread = settings.PAPER_SPREAD_BPS
    return MarketView(
        product=instrument.product,
        quote=instrument.quote,
        primary_currency=settings.PRIMARY_CURRENCY,
        fill_price_buy=trade_math.fill_price(mark, trade_math.BUY, spread, instrument.price_tick),
        fill_price_sell=trade_math.fill_price(mark, trade_math.SELL, spread, instrument.price_tick),
        max_leverage=instrument.max_leverage,
        constraints=constraints_of(instrument),
    )


@dataclass
class ChunkResult:
    copied: int = 0
    skipped: int = 0
    rejected: int = 0
    failed: int = 0
    already_done: bool = False


MIRROR_ORDER_FIELDS = ("pk", "account_id", "status", "quantity", "price", "leverage", "reserved")


def _leader_position_id(data: LeaderEventData) -> int | None:
    """The leader's position the event is about (its mirrors follow it)."""
    if isinstance(data, PositionOpen | PositionReduce | PositionClose | TpslSet):
        return data.leader_position_id
    return None


def _load_mirrors(data: LeaderEventData, first_id: int, last_id: int) -> dict[int, PositionState]:
    leader_position_id = _leader_position_id(data)
    if leader_position_id is None:
        return {}
    rows = (
        Position.objects.select_for_update()
        .filter(
            leader_position_id=leader_position_id,
            status=PositionStatus.OPEN,
            subscription_id__gte=first_id,
            subscription_id__lte=last_id,
        )
        .order_by("pk")
        .values_list(*PositionState.FIELDS)
    )
    return {state.account_id: state for state in (PositionState(*row) for row in rows)}


def _leader_order_id(data: LeaderEventData) -> int | None:
    """The leader's limit order whose mirrors the event moves: re-priced,
    cancelled or filled (a placed order has no mirrors yet)."""
    if isinstance(data, LimitRepriced | LimitCancelled):
        return data.leader_order_id
    if isinstance(data, FillEvent):
        return data.limit_order_id
    return None


def _load_mirror_orders(data: LeaderEventData, first_id: int, last_id: int) -> dict[int, MirrorOrder]:
    leader_order_id = _leader_order_id(data)
    if leader_order_id is None:
        return {}
    rows = (
        Order.objects.select_for_update()
        .filter(leader_order_id=leader_order_id, subscription_id__gte=first_id, subscription_id__lte=last_id)
        .order_by("pk")
        .values_list(*MIRROR_ORDER_FIELDS)
    )
    return {row[1]: MirrorOrder(row[0], MirrorOrderView(*row[2:])) for row in rows}


def _executions_in(first_id, last_id):
    """The execution rows of the checkpoint's event in a range of its
    subscriptions, as a subquery of the checkpoint's own read."""
    return Execution.objects.filter(
        event_id=OuterRef("event_id"),
        created_at=OuterRef("event__created_at"),  # the partition key
        subscription_id__gte=first_id,
        subscription_id__lte=last_id,
    )


def chunk_propagate(chunk_id: int) -> ChunkResult:
    """Apply one chunk of one event, all or nothing.

    If it raises for a reason other than an outage (a bug or a row no code
    expected, for one follower), the chunk is isolated instead of failing:
    its followers are applied in halves, each half all or nothing, until the
    follower that raises is alone; that one gets a ``FAILED`` execution row,
    every other one its normal row, and the chunk completes (a failure every
    follower hits is the event's: see ``_chunk_isolate``). An outage (the
    database down, a deadlock, a statement timeout) still raises: the chunk
    stays pending and the reconciler resumes it, as before."""
    try:
        return _chunk_apply(chunk_id)
    except EventPayloadError:
        raise  # the event is broken, not a follower: nothing to isolate
    except Exception as exc:
        if is_outage(exc):
            raise
        log.warning("chunk %s raised %r; isolating the follower that makes it fail", chunk_id, exc)
        return _chunk_isolate(chunk_id)


def _chunk_apply(chunk_id: int, part: tuple[int, int] | None = None) -> ChunkResult:
    """Apply the chunk (or ``part``, a sub-range of its subscription ids) in
    one transaction. The whole chunk is then done; a part leaves it pending."""
    result = ChunkResult()
    with transaction.atomic():
        _relax_commit_durability()
        chunk = (
            # Lock the checkpoint only, not the joined event row, or every
            # chunk of the event would queue behind the others.
            PropagationChunk.objects.select_for_update(of=("self",))
            .select_related("event")
            .annotate(
                served_any=Exists(_executions_in(OuterRef("first_subscription_id"), OuterRef("last_subscription_id")))
            )
            .filter(pk=chunk_id, status=ChunkStatus.PENDING)
            .first()
        )
        if chunk is None:
            result.already_done = True
            return result
        event = chunk.event
        data = event.data
        view = decisions.event_view(data)
        instrument = Instrument.objects.get(pk=data.instrument_id)
        # A not-copied order is skipped for everyone: it needs no price (the
        # instrument may have none yet).
        market = None if event.kind == decisions.ORDER_NOT_COPIED else _market_view(instrument, view.price or None)
        first_id, last_id = part or (chunk.first_subscription_id, chunk.last_subscription_id)
        targets = target_source().load(event.portfolio_id, first_id, last_id)
        # Execution rows and the checkpoint commit together, so a pending chunk
        # normally has none; a cheap range probe keeps a manual replay (a chunk
        # set back to pending) a no-op for the followers already served. The
        # whole chunk's probe came with its checkpoint (one round trip fewer);
        # a part of it (isolation) probes its own range.
        in_chunk = Execution.objects.filter(
            event=event,
            created_at=event.created_at,  # the partition key: one partition read (copytrading/partitions.py)
            subscription_id__gte=first_id,
            subscription_id__lte=last_id,
        )
        if in_chunk.exists() if part else chunk.served_any:
            served = set(in_chunk.values_list("subscription_id", flat=True))
            targets = [t for t in targets if t.subscription_id not in served]
        accounts = ledger.lock_balances(t.account_id for t in targets)
        # The kill switch (copytrading/live; docs/decisions.md §72): one
        # cached read per chunk. While it is on, every follower is decided as
        # if paused, and what a pause skips is skipped as COPYING_HALTED with
        # the staff's reason (no pre-trade check: nothing opens).
        halted = live.current().halt_reason(event.portfolio_id)
        # Only copies that can open or grow a position (a spot buy, a spot
        # limit buy included) are checked; the books are read under the
        # accounts' locks.
        pretrade = (
            target_source().pretrade_gate(targets)
            if event.kind in (decisions.POSITION_OPEN, decisions.LIMIT_PLACED, decisions.SPOT_BUY)
            and targets
            and halted is None
            else None
        )

        # Lock order as everywhere: accounts, positions, orders, holdings.
        mirrors = _load_mirrors(data, first_id, last_id)
        mirror_orders = _load_mirror_orders(data, first_id, last_id)
        holdings: dict[int, Holding] = {}
        if event.kind in (decisions.SPOT_BUY, decisions.SPOT_SELL) or (
            market is not None and market.product == decisions.SPOT_PRODUCT and event.kind in decisions.LIMIT_KINDS
        ):
            for h in (
                Holding.objects.select_for_update()
                .filter(asset=instrument.base, account_id__any=list(accounts))
                .order_by("pk")
            ):
                holdings[h.account_id] = h
        leader_position_id = _leader_position_id(data)

        writer = ChunkWriter(event, data, view, instrument, halt_reason=halted)
        for target in targets:
            balance, locked = accounts[target.account_id]
            mirror = mirrors.get(target.account_id)
            holding = holdings.get(target.account_id)
            mirror_order = mirror_orders.get(target.account_id)
            decision = decisions.decide(
                view,
                target,
                free=balance - locked,
                equity=balance,
                mirror=MirrorView(mirror.side, mirror.quantity, mirror.leverage) if mirror else None,
                holding=holding.quantity if holding else ZERO,
                holding_reserved=holding.reserved if holding else ZERO,
                market=market,
                mirror_order=mirror_order.view if mirror_order else None,
                pretrade=pretrade,
            ) if halted is None else _decide_halted(
                view, target, free=balance - locked, equity=balance, mirror=mirror, holding=holding,
                market=market, mirror_order=mirror_order,
            )  # fmt: skip
            writer.add(target, decision, mirror, mirror_order, holding, leader_position_id)

        writer.write()
        if _execution_listeners:
            _tell_execution_listeners(
                event,
                [ExecutionOutcome(t.subscription_id, d.outcome, d.reason) for t, d, _ in writer.rows],
            )
        outcomes = Counter(decision.outcome for _, decision, _ in writer.rows)
        result.copied += outcomes[decisions.COPIED]
        result.skipped += outcomes[decisions.SKIPPED]
        result.rejected += outcomes[decisions.REJECTED]
        result.failed += outcomes[decisions.FAILED]
        # Increments, not assignments: a replayed chunk writes rows only for
        # the followers it had not served, and counts only those.
        done = {} if part else {"status": ChunkStatus.DONE, "attempts": chunk.attempts + 1}
        PropagationChunk.objects.filter(pk=chunk.pk).update(
            **done,
            updated_at=timezone.now(),
            copied=F("copied") + outcomes[decisions.COPIED],
            skipped=F("skipped") + outcomes[decisions.SKIPPED],
            rejected=F("rejected") + outcomes[decisions.REJECTED],
            failed=F("failed") + outcomes[decisions.FAILED],
        )
    return result


def _decide_halted(
    view: decisions.EventView,
    target: TargetView,
    *,
    free: Decimal,
    equity: Decimal,
    mirror: PositionState | None,
    holding: Holding | None,
    market: MarketView | None,
    mirror_order: MirrorOrder | None,
) -> decisions.Decision:
    """A follower's decision while copying is halted: the decision of the
    same follower paused, with ``COPYING_HALTED`` for what the pause skips
    (opens, increases, buys, placed limits). Closes, reduces, sells, TP/SL
    and a resting mirror limit's re-price, cancel or fill still go through,
    as for a paused copy. A follower who paused keeps SUBSCRIPTION_PAUSED."""
    decision = decisions.decide(
        view,
        replace(target, active=False) if target.active else target,
        free=free,
        equity=equity,
        mirror=MirrorView(mirror.side, mirror.quantity, mirror.leverage) if mirror else None,
        holding=holding.quantity if holding else ZERO,
        holding_reserved=holding.reserved if holding else ZERO,
        market=market,
        mirror_order=mirror_order.view if mirror_order else None,
        pretrade=None,
    )
    if target.active and decision.reason == decisions.SUBSCRIPTION_PAUSED:
        return replace(decision, reason=decisions.COPYING_HALTED)
    return decision


def _relax_commit_durability() -> None:
    """Commit a chunk without waiting for the WAL flush (PostgreSQL only).

    Safe here because a chunk is all-or-nothing and replayable: if the database
    server crashed within the last few hundred milliseconds, a lost chunk loses
    its checkpoint together with its orders and transfers, and the reconciler
    runs it again. The leader's own change is still committed durably.
    """
    if settings.FANOUT_ASYNC_COMMIT and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


# --- isolating a failing follower ----------------------------------------------

FAILURE_TASK = "copytrading.tasks.propagate_chunk/follower"


def _chunk_isolate(chunk_id: int) -> ChunkResult:
    """Bisect the chunk's unserved followers until each failing one is alone.

    Every part is its own transaction under the chunk's lock, and commits its
    execution rows with it: a crash mid-isolation leaves the chunk pending and
    its served followers served, so a replay (the reconciler) serves only the
    rest, once. A part that raises is split in two; a single follower that
    raises is a culprit. Cost: about 2 x log2(chunk) parts per culprit.

    Only a failure that spares someone is a follower's: if every one of two
    or more followers raised (and none was served before, by an earlier run
    a crash cut short), the event itself is broken (an instrument
    without a mark, a payload no code expected, a bug every follower hits).
    Writing ``FAILED`` for all of them would end their copy of it for good,
    so the last error is raised instead and the chunk stays pending, as
    before isolation existed: the job-error feed shows it, and the reconciler
    runs it again once the cause is fixed. Otherwise each culprit gets its
    ``FAILED`` row and the chunk is done."""
    result = ChunkResult()
    unserved = _unserved_subscription_ids(chunk_id)
    if unserved is None:
        result.already_done = True
        return result
    pending, served_before = unserved
    # The whole chunk has just failed: start with its halves.
    stack = list(reversed(_halves(pending))) if len(pending) > 1 else [pending]
    culprits: list[tuple[int, Exception]] = []
    while stack:
        ids = stack.pop()
        try:
            part = _chunk_apply(chunk_id, part=(ids[0], ids[-1]))
        except Exception as exc:
            if is_outage(exc):
                raise
            if len(ids) > 1:
                stack.extend(reversed(_halves(ids)))
            else:
                culprits.append((ids[0], exc))
            continue
        if part.already_done:
            result.already_done = True
            return result
        result.copied += part.copied
        result.skipped += part.skipped
        result.rejected += part.rejected
        result.failed += part.failed
    if len(culprits) == len(pending) > 1 and not served_before:
        raise culprits[-1][1]
    for subscription_id, exc in culprits:
        if _chunk_fail_follower(chunk_id, subscription_id, exc):
            result.failed += 1
    _chunk_finish(chunk_id)
    return result


def _halves(ids: list[int]) -> list[list[int]]:
    middle = len(ids) // 2
    return [ids[:middle], ids[middle:]]


def _unserved_subscription_ids(chunk_id: int) -> tuple[list[int], int] | None:
    """The chunk's reachable followers without an execution row for its event
    yet, ascending, and how many have one; None if the chunk is done."""
    chunk = PropagationChunk.objects.select_related("event").filter(pk=chunk_id, status=ChunkStatus.PENDING).first()
    if chunk is None:
        return None
    first_id, last_id = chunk.first_subscription_id, chunk.last_subscription_id
    targets = target_source().load(chunk.event.portfolio_id, first_id, last_id)
    served = set(
        Execution.objects.filter(
            event_id=chunk.event_id,
            created_at=chunk.event.created_at,  # the partition key: one partition read
            subscription_id__gte=first_id,
            subscription_id__lte=last_id,
        ).values_list("subscription_id", flat=True)
    )
    return [t.subscription_id for t in targets if t.subscription_id not in served], len(served)


def _leader_sizes(event: LeaderEvent) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """The leader's quantity, share and price for the execution row, as the
    writer records them; none if the payload is what made the chunk fail."""
    try:
        view = decisions.event_view(event.data)
        return view.quantity or None, leader_fraction(view), view.price or None
    except (ValueError, TypeError, ArithmeticError):
        return None, None, None


@transaction.atomic
def _chunk_fail_follower(chunk_id: int, subscription_id: int, exc: Exception) -> bool:
    """Record ``FAILED`` for one follower of a pending chunk (once: the unique
    execution row and the chunk's lock make a second call a no-op), and report
    it to the job-error feed in the same transaction, so a crash keeps both
    or neither. Nothing else is written for the follower: its part rolled
    back whole."""
    chunk = (
        PropagationChunk.objects.select_for_update(of=("self",))
        .select_related("event")
        .filter(pk=chunk_id, status=ChunkStatus.PENDING)
        .first()
    )
    if chunk is None:
        return False
    event = chunk.event
    if Execution.objects.filter(event=event, subscription_id=subscription_id).exists():
        return False
    leader_quantity, fraction, leader_price = _leader_sizes(event)
    Execution.objects.create(
        event=event,
        subscription_id=subscription_id,
        portfolio_id=event.portfolio_id,
        outcome=decisions.FAILED,
        reason_code=decisions.INTERNAL_ERROR,
        leader_quantity=leader_quantity,
        leader_fraction=fraction,
        leader_price=leader_price,
        created_at=event.created_at,  # the partition key: the event's time (models.Execution)
    )
    PropagationChunk.objects.filter(pk=chunk.pk).update(failed=F("failed") + 1, updated_at=timezone.now())
    _tell_execution_listeners(event, [ExecutionOutcome(subscription_id, decisions.FAILED, decisions.INTERNAL_ERROR)])
    _report_failed_follower(chunk_id, event.pk, subscription_id, exc)
    return True


def _chunk_finish(chunk_id: int) -> None:
    PropagationChunk.objects.filter(pk=chunk_id, status=ChunkStatus.PENDING).update(
        status=ChunkStatus.DONE, attempts=F("attempts") + 1, updated_at=timezone.now()
    )


def _report_failed_follower(chunk_id: int, event_id: int, subscription_id: int, exc: Exception) -> None:
    log.error(
        "follower %s failed on event %s (chunk %s): recorded FAILED %s",
        subscription_id,
        event_id,
        chunk_id,
        decisions.INTERNAL_ERROR,
        exc_info=exc,
    )
    failure_report(
        task=FAILURE_TASK,
        arguments={"chunk_id": chunk_id, "event_id": event_id, "subscription_id": subscription_id},
        exc=exc,
    )


# --- safety nets ------------------------------------------------------------


def relay_undispatched(*, older_than: timedelta = timedelta(seconds=5)) -> int:
    """Re-dispatch the head pending event of every portfolio (a crash between
    commit and enqueue loses the dispatch, never the event)."""
    cutoff = timezone.now() - older_than
    heads = (
        LeaderEvent.objects.filter(status=LeaderEventStatus.PENDING, created_at__lt=cutoff)
        .order_by("portfolio_id", "seq")
        .values_list("portfolio_id", "pk")
    )
    seen: set[int] = set()
    for portfolio_id, event_id in heads:
        if portfolio_id in seen:
            continue
        seen.add(portfolio_id)
        dispatch(event_id)
    return len(seen)


def stale_chunks(*, older_than: timedelta) -> list[int]:
    """Pending chunks not touched for a while: their worker died or their
    message was lost. Running them again is safe (checkpoint + unique rows)."""
    cutoff = timezone.now() - older_than
    return list(
        PropagationChunk.objects.filter(status=ChunkStatus.PENDING, updated_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def unfinished_events() -> list[int]:
    return list(
        LeaderEvent.objects.filter(status=LeaderEventStatus.PROPAGATING).order_by("pk").values_list("pk", flat=True)
    )
