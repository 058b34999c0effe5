"""Price-driven matching on the paper venue: what a new mark price does.

``services.price_set`` runs ``match_instrument`` in the price update's
transaction. In order:

1. Resting limit orders of own accounts (leaders) that the mark crosses fill
   at their limit price, netted like a market order (``trade_math.plan_order``).
2. Mirror limit orders fill with them: a mirror fills here only together with
   its leader order (same pass, the mark crossing both). A mirror never fills
   ahead of its leader, so a mirror whose leader was re-priced away (and whose
   re-price is still propagating) does not trade; a mirror left resting when
   its leader filled is filled by the propagation of the leader's fill event
   instead. Either way the follower gets the position once.
   On a spot instrument these are the only two passes: a spot limit fills
   whole at its price, paid by what it reserved (``matching.spot``).
3. Open positions whose take-profit, stop-loss or liquidation level the mark
   reaches close at market (isolated margin: the loss is capped at the margin).

Set-based: one query per kind finds the candidates, every batch of fills goes
through ``venue.apply_fills``. A leader's fill or trigger commits its leader
event in the same transaction, so followers follow. Running it twice at the
same price finds nothing the second time: filled orders no longer rest and
closed positions are no longer open.

Lock order (no deadlock with the leader API or propagation): portfolios, then
accounts, then positions, then orders, then holdings, each in primary-key order.
"""

import logging
from decimal import Decimal

from django.db import transaction
from django.db.models import Case, DecimalField, F, Q, Value, When

from copytrading import ledger, trade_math
from copytrading.failures import failure_report
from copytrading.matching.common import (  # noqa: F401 - re-exported: the public API of matching
    RESTING_FIELDS,
    LeaderBook,
    LeaderFill,
    MatchResult,
    Resting,
    constraints_of,
    leader_book,
    register_leader_book,
)
from copytrading.matching.passes import Matcher
from copytrading.matching.spot import SpotMatcher
from copytrading.models import (
    MONEY,
    AccountKind,
    Holding,
    Instrument,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Product,
)
from copytrading.outages import after_commit, is_outage
from copytrading.venue import PositionState

log = logging.getLogger(__name__)

# The database only pre-selects liquidation candidates (SQLite computes in
# binary floats): a hair looser than exact, then decided exactly in Python.
_LOOSE = Decimal("0.99999999")


def _trigger_filter(mark: Decimal, *, liquidations: bool = True) -> tuple[dict, Q]:
    money = DecimalField(**MONEY)
    price = Value(mark, output_field=money)
    loss = Case(
        When(side=trade_math.LONG, then=(F("entry_price") - price) * F("quantity")),
        default=(price - F("entry_price")) * F("quantity"),
        output_field=money,
    )
    long, short = Q(side=trade_math.LONG), Q(side=trade_math.SHORT)
    condition = (
        (long & Q(take_profit__lte=mark))
        | (short & Q(take_profit__gte=mark))
        | (long & Q(stop_loss__gte=mark))
        | (short & Q(stop_loss__lte=mark))
    )
    if liquidations:
        condition |= Q(margin__gt=0, loss__gte=F("margin") * Value(_LOOSE, output_field=money))
    return {"loss": loss}, condition


MIRROR_PASS_FAILURE_TASK = "copytrading.matching/mirror-limit-fills"


def match_instrument(instrument: Instrument) -> MatchResult:
    """Fill, trigger and liquidate at the instrument's current mark. Runs
    inside the caller's transaction (the price update).

    A mirror limit that makes the match raise (a bug, a row no code expected;
    not an outage) must not stop the market for everyone: the match is redone
    without the mirror pass (and the failure reported to the job-error feed).
    The leader fills then commit their fill events, whose propagation fills
    the mirrors left resting, one chunk at a time, where a follower that
    still raises is isolated (``propagation``)."""
    try:
        with transaction.atomic():  # a savepoint: the retry starts clean
            return _match(instrument, mirrors=True)
    except Exception as exc:
        if is_outage(exc):
            raise
        log.error("match of %s at %s raised; matching without the mirror pass", instrument, instrument.mark_price)
        arguments = {"instrument_id": instrument.pk, "mark_price": str(instrument.mark_price)}
        # Reported once the price update commits: the feed's row is not held
        # locked by a price update (others hitting the same bug would queue
        # behind it). A price update that rolls back reports nothing, but its
        # next one meets the same mirror and reports it then.
        after_commit(
            # ``exc`` is bound now: Python unbinds the except target after the block.
            lambda error=exc: failure_report(task=MIRROR_PASS_FAILURE_TASK, arguments=arguments, exc=error),
            what="job-error report",
        )
        return _match(instrument, mirrors=False)


def _match(instrument: Instrument, *, mirrors: bool) -> MatchResult:
    result = MatchResult()
    mark = instrument.mark_price
    if mark is None:
        return result
    crossing = Q(side=trade_math.BUY, price__gte=mark) | Q(side=trade_math.SELL, price__lte=mark)
    order_rows = list(
        Order.objects.filter(instrument=instrument, status=OrderStatus.OPEN)
        .filter(crossing)
        .values_list("pk", "account_id", "leader_order_id")
    )
    own_ids = {pk for pk, _, leader_order_id in order_rows if leader_order_id is None}
    order_rows = [row for row in order_rows if row[2] is None or (mirrors and row[2] in own_ids)]
    spot = instrument.product == Product.SPOT
    trigger_rows = []
    if not spot:  # spot has no positions to trigger
        # A flagged mark (a jump beyond the feed's sanity band, a stale feed) never liquidates.
        alias, condition = _trigger_filter(mark, liquidations=instrument.mark_trusted)
        trigger_rows = list(
            # A leader trading on an exchange: its TP/SL and liquidations are
            # the exchange's, and come back as trades. (A follower's exchange
            # copy is triggered here and closes through the exchange.)
            Position.objects.filter(instrument=instrument, status=PositionStatus.OPEN)
            .exclude(account__exchange_account__isnull=False, account__kind=AccountKind.LEADER_TRADING)
            .alias(**alias)
            .filter(condition)
            .values_list("pk", "account_id")
        )
    if not order_rows and not trigger_rows:
        return result

    order_accounts = sorted({account_id for _, account_id, _ in order_rows})
    accounts = sorted(set(order_accounts) | {account_id for _, account_id in trigger_rows})
    portfolios = leader_book().lock_portfolios(accounts)
    balances = ledger.lock_balances(accounts)
    wanted = Q(pk__any=[pk for pk, _ in trigger_rows]) if trigger_rows else Q(pk__in=[])
    if order_accounts:
        wanted |= Q(account_id__any=order_accounts)
    positions = (
        {}
        if spot
        else {
            state.pk: state
            for state in (
                PositionState(*row)
                for row in Position.objects.select_for_update()
                .filter(wanted, instrument=instrument, status=PositionStatus.OPEN)
                .order_by("pk")
                .values_list(*PositionState.MATCH_FIELDS)
            )
        }
    )
    orders = (
        [
            Resting(*row)
            for row in Order.objects.select_for_update()
            .filter(pk__any=[row[0] for row in order_rows], status=OrderStatus.OPEN)
            .order_by("pk")
            .values_list(*RESTING_FIELDS)
        ]
        if order_rows
        else []
    )

    # Re-checked under the lock: a re-price may have moved an order since the
    # candidate query.
    orders = [o for o in orders if trade_math.crossed(o.side, o.price, mark)]
    if spot:
        holdings = {
            (h.account_id, h.asset): h
            for h in Holding.objects.select_for_update()
            .filter(account_id__any=order_accounts, asset__in=[instrument.base, instrument.quote])
            .order_by("pk")
        }
        spot_matcher = SpotMatcher(instrument, mark, portfolios, balances, {}, result, holdings)
        filled = spot_matcher.fill_own_spot_orders([o for o in orders if o.leader_order_id is None])
        spot_matcher.fill_spot_mirrors([o for o in orders if o.leader_order_id in filled])
        return result
    matcher = Matcher(instrument, mark, portfolios, balances, positions, result)
    leader_fills = matcher.fill_own_orders([o for o in orders if o.leader_order_id is None])
    matcher.fill_mirror_orders([o for o in orders if o.leader_order_id in leader_fills], leader_fills)
    matcher.trigger_positions()
    return result
