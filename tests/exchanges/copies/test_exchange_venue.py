"""The exchange venue on the engine side: a follower bound to a linked
exchange account gets pending orders (and ExchangeOrders to send) instead of
fills; what the exchange then says (``record_outcomes``, the contract the
submitter reports through) is applied as the paper venue applies fills.

The leader trades through the portfolio services; on-commit dispatches run
the (eager) tasks as in production. The submitter's task is replaced by a
recorder of what would be sent (its own tests cover the network); fills are
driven by calling ``record_outcomes`` directly."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from copytrading import trade_math
from copytrading.exchanges.models import ExchangeOrder
from copytrading.exchanges.models import ExchangeOrderStatus as S
from copytrading.exchanges.outcomes import record_outcomes
from copytrading.ledger import ledger_check
from copytrading.models import (
    Account,
    Execution,
    Instrument,
    LeaderEvent,
    LeaderEventStatus,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Transfer,
)
from copytrading.venues import venue_for_account
from copytrading.venues.exchange import ExchangeVenue
from followers.services import subscription_position_close
from tests.copytrading.world import ETH_PERP, mirrors_of, outcomes, wallet
from tests.exchanges.copies.conftest import bound_follower, exchange_orders_of, linked_account, outcome, tell
from tests.factories import UserFactory

D = Decimal


def test_a_bound_follower_gets_a_pending_order_and_nothing_moves_before_the_exchange_fills(world, submitted):
    portfolio = world.leader()
    paper = world.follower(portfolio)
    bound = bound_follower(portfolio)
    transfers_before = Transfer.objects.filter(debit_id=bound.copy_account_id).count()

    (event,) = world.trade(portfolio, ETH_PERP, "buy", "2")

    # The paper follower is filled at once; the bound one waits for the exchange.
    assert mirrors_of(paper).get().quantity == D("1.00")
    assert not mirrors_of(bound).exists()
    order = Order.objects.get(account_id=bound.copy_account_id)
    margin = trade_math.margin_for(D("1.00"), D("3200"), 10)
    assert (order.status, order.quantity, order.reserved, order.leader_event_id) == (
        OrderStatus.PENDING, D("1.00"), margin, event.pk,
    )  # fmt: skip
    assert (wallet(bound).balance, wallet(bound).locked) == (D("5000"), margin)
    assert Transfer.objects.filter(debit_id=bound.copy_account_id).count() == transfers_before
    (row,) = exchange_orders_of(bound)
    assert (row.client_order_id, row.symbol, row.side, row.quantity, row.reduce_only, row.order_id) == (
        f"ct-{event.pk}-{bound.pk}", ETH_PERP, "buy", D("1"), False, order.pk,
    )  # fmt: skip
    assert row.status == S.PENDING and row.decided_at is not None and row.leader_event_id == event.pk
    assert submitted == [[row.pk]]
    assert outcomes(event) == {paper.pk: ("COPIED", ""), bound.pk: ("COPIED", "")}
    assert Execution.objects.get(event=event, subscription_id=bound.pk).order_id == order.pk
    # The event waits for its exchange order.
    event.refresh_from_db()
    assert event.status == LeaderEventStatus.PROPAGATING

    tell(world, outcome(row, S.ACKNOWLEDGED), outcome(row, S.FILLED, "1", "3210"))

    mirror = mirrors_of(bound).get()
    assert (mirror.status, mirror.quantity, mirror.entry_price, mirror.leverage) == (
        PositionStatus.OPEN, D("1.00"), D("3210"), 10,
    )  # fmt: skip
    assert mirror.subscription_id == bound.pk and mirror.leader_position_id is not None
    order.refresh_from_db()
    assert (order.status, order.price, order.reserved, order.position_id) == (
        OrderStatus.FILLED, D("3210"), D("0"), mirror.pk,
    )  # fmt: skip
    assert wallet(bound).locked == trade_math.margin_for(D("1"), D("3210"), 10)
    execution = Execution.objects.get(event=event, subscription_id=bound.pk)
    assert (execution.outcome, execution.follower_quantity, execution.follower_price) == ("COPIED", D("1"), D("3210"))
    event.refresh_from_db()
    assert event.status == LeaderEventStatus.DONE
    assert ledger_check().ok


def test_quantities_are_sent_in_contracts_and_partial_fills_apply_by_increment(world):
    Instrument.objects.filter(symbol=ETH_PERP).update(contract_size=D("0.01"))
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    (row,) = exchange_orders_of(bound)
    assert row.quantity == D("100")  # 1.00 ETH in contracts of 0.01
    order = Order.objects.get(pk=row.order_id)
    margin = order.reserved

    tell(world, outcome(row, S.PARTIALLY_FILLED, "40", "3200"))

    mirror = mirrors_of(bound).get()
    assert (mirror.quantity, mirror.entry_price) == (D("0.40"), D("3200"))
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    assert order.reserved == margin - margin * D("0.4")  # the filled part's reservation went back
    assert wallet(bound).locked == order.reserved + trade_math.margin_for(D("0.4"), D("3200"), 10)
    event.refresh_from_db()
    assert event.status == LeaderEventStatus.PROPAGATING

    # The same partial again is no news; then the rest, at a cumulative average.
    tell(world, outcome(row, S.PARTIALLY_FILLED, "40", "3200"))
    assert mirrors_of(bound).get().quantity == D("0.40")
    tell(world, outcome(row, S.FILLED, "100", "3205"))

    mirror = mirrors_of(bound).get()
    assert mirror.quantity == D("1.00")
    assert mirror.entry_price == D("3205")  # 0.4 @ 3200 + 0.6 @ 3208.333…: the exchange's average
    order.refresh_from_db()
    assert (order.status, order.quantity, order.price, order.reserved) == (
        OrderStatus.FILLED, D("1.00"), D("3205"), D("0"),
    )  # fmt: skip
    row.refresh_from_db()
    assert row.applied_quantity == D("100")
    event.refresh_from_db()
    assert event.status == LeaderEventStatus.DONE
    assert ledger_check().ok


def test_a_rejection_releases_the_reservation_and_says_why(world):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    (row,) = exchange_orders_of(bound)

    tell(world, outcome(row, S.REJECTED, reject_code="EXCHANGE_INSUFFICIENT_FUNDS", reject_message="no margin"))

    order = Order.objects.get(pk=row.order_id)
    assert (order.status, order.reserved) == (OrderStatus.REJECTED, D("0"))
    assert (wallet(bound).balance, wallet(bound).locked) == (D("5000"), D("0"))
    assert not mirrors_of(bound).exists()
    assert outcomes(event) == {bound.pk: ("REJECTED", "EXCHANGE_INSUFFICIENT_FUNDS")}
    event.refresh_from_db()
    assert event.status == LeaderEventStatus.DONE

    # The rejection again changes nothing; a late fill of an order the engine
    # has ended is recorded on the exchange order (drift for the reconciler)
    # but not applied twice over a released reservation.
    def engine():
        return (
            sorted(Order.objects.values_list("pk", "status", "reserved")), Position.objects.count(),
            Transfer.objects.count(), wallet(bound).locked, outcomes(event),
        )  # fmt: skip

    before = engine()
    assert tell(world, outcome(row, S.REJECTED, reject_code="EXCHANGE_INSUFFICIENT_FUNDS")) == []
    tell(world, outcome(row, S.FILLED, "1", "3200"))
    assert engine() == before
    assert ledger_check().ok


def test_a_failure_without_a_code_gets_the_generic_one(world):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    (row,) = exchange_orders_of(bound)

    tell(world, outcome(row, S.FAILED))

    assert outcomes(event) == {bound.pk: ("FAILED", "EXCHANGE_FAILED")}
    assert wallet(bound).locked == 0


def test_the_next_event_waits_for_the_previous_events_fills(world, submitted):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    leader_position = Position.objects.get(account_id=portfolio.trading_account_id, status=PositionStatus.OPEN)

    closed = world.close(portfolio, leader_position.pk)

    # Decided before the open filled, the close would find no mirror: it waits.
    closed.refresh_from_db()
    assert closed.status == LeaderEventStatus.PENDING
    assert not Execution.objects.filter(event=closed).exists()
    (open_row,) = exchange_orders_of(bound)

    tell(world, outcome(open_row, S.FILLED, "1", "3200"))

    # The open's fill completed its event and dispatched the close, which
    # decided on the mirror the fill made.
    closed.refresh_from_db()
    assert closed.status == LeaderEventStatus.PROPAGATING
    _, close_row = exchange_orders_of(bound)
    assert (close_row.client_order_id, close_row.side, close_row.quantity, close_row.reduce_only) == (
        f"ct-{closed.pk}-{bound.pk}", "sell", D("1"), True,
    )  # fmt: skip
    assert submitted[-1] == [close_row.pk]
    assert mirrors_of(bound).get().status == PositionStatus.OPEN

    tell(world, outcome(close_row, S.FILLED, "1", "3300"))

    mirror = mirrors_of(bound).get()
    assert (mirror.status, mirror.quantity, mirror.realized_pnl) == (PositionStatus.CLOSED, D("0"), D("100"))
    assert (wallet(bound).balance, wallet(bound).locked) == (D("5100"), D("0"))
    closed.refresh_from_db()
    assert closed.status == LeaderEventStatus.DONE
    assert ledger_check().ok


def test_a_rejected_close_leaves_the_mirror_open_and_visible(world):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    tell(world, outcome(exchange_orders_of(bound)[0], S.FILLED, "1", "3200"))
    leader_position = Position.objects.get(account_id=portfolio.trading_account_id, status=PositionStatus.OPEN)

    closed = world.close(portfolio, leader_position.pk)
    close_row = exchange_orders_of(bound)[-1]
    tell(world, outcome(close_row, S.REJECTED, reject_code="EXCHANGE_REDUCE_ONLY_REJECTED"))

    mirror = mirrors_of(bound).get()
    assert (mirror.status, mirror.quantity) == (PositionStatus.OPEN, D("1.00"))
    assert outcomes(closed) == {bound.pk: ("REJECTED", "EXCHANGE_REDUCE_ONLY_REJECTED")}
    assert Order.objects.get(pk=close_row.order_id).status == OrderStatus.REJECTED
    assert wallet(bound).locked == trade_math.margin_for(D("1"), D("3200"), 10)


def test_a_followers_close_goes_through_the_exchange_once(world, submitted):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    tell(world, outcome(exchange_orders_of(bound)[0], S.FILLED, "1", "3200"))
    mirror = mirrors_of(bound).get()
    assert isinstance(venue_for_account(bound.copy_account_id), ExchangeVenue)

    with world.capture(execute=True):
        done = subscription_position_close(subscription=bound, position_id=mirror.pk, quantity=D("0.40"))
    with world.capture(execute=True):
        again = subscription_position_close(subscription=bound, position_id=mirror.pk)

    assert again.fill.order.pk == done.fill.order.pk  # a close already pending is not sent twice
    close_row = ExchangeOrder.objects.get(order_id=done.fill.order.pk)
    assert (close_row.client_order_id, close_row.quantity, close_row.reduce_only, close_row.leader_event_id) == (
        f"ct-c{done.fill.order.pk}", D("0.4"), True, None,
    )  # fmt: skip
    assert submitted[-1] == [close_row.pk]
    mirror.refresh_from_db()
    assert mirror.quantity == D("1.00")  # nothing before the exchange confirms

    tell(world, outcome(close_row, S.FILLED, "0.4", "3100"))

    mirror.refresh_from_db()
    assert (mirror.status, mirror.quantity, mirror.realized_pnl) == (PositionStatus.OPEN, D("0.60"), D("-40"))
    assert wallet(bound).balance == D("4960")
    assert ledger_check().ok


def test_a_leader_limit_is_not_mirrored_on_an_exchange_copy(world):
    portfolio = world.leader()
    paper = world.follower(portfolio)
    bound = bound_follower(portfolio)

    event = world.limit(portfolio, ETH_PERP, "buy", "2", "3000")

    assert outcomes(event) == {paper.pk: ("COPIED", ""), bound.pk: ("SKIPPED", "MIRROR_LIMIT_NOT_ON_EXCHANGE")}
    assert not Order.objects.filter(account_id=bound.copy_account_id).exists()


def test_a_stuck_order_that_fails_unblocks_the_portfolio(world):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    second = world.trade(portfolio, ETH_PERP, "buy", "2")[0]
    second.refresh_from_db()
    assert second.status == LeaderEventStatus.PENDING

    # The submitter gave up on the first order (FAILED is final).
    tell(world, outcome(exchange_orders_of(bound)[0], S.FAILED, reject_code="EXCHANGE_UNAVAILABLE"))

    second.refresh_from_db()
    assert second.status == LeaderEventStatus.PROPAGATING
    assert [r.client_order_id for r in exchange_orders_of(bound)][-1] == f"ct-{second.pk}-{bound.pk}"
    assert LeaderEvent.objects.filter(portfolio_id=portfolio.pk, status=LeaderEventStatus.DONE).count() == 1


def test_reading_an_outcome_twice_across_transactions_applies_once(world):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    (row,) = exchange_orders_of(bound)
    fill = outcome(row, S.FILLED, "1", "3200")

    tell(world, fill)
    state = (wallet(bound).balance, wallet(bound).locked, Transfer.objects.count(), Position.objects.count())
    tell(world, fill, outcome(row, S.PARTIALLY_FILLED, "0.5", "3200"))

    assert (wallet(bound).balance, wallet(bound).locked, Transfer.objects.count(), Position.objects.count()) == state


def test_an_order_the_engine_has_no_row_for_is_left_alone(world):
    """The reconciler's own orders (no engine Order) are not the applier's."""
    user = UserFactory()
    row = ExchangeOrder.objects.create(
        exchange_account=linked_account(user), client_order_id="ct-r1", symbol=ETH_PERP, side="sell",
        quantity=D("1"), reduce_only=True, decided_at=timezone.now() - timedelta(seconds=1),
    )  # fmt: skip
    before = (Order.objects.count(), Position.objects.count(), Transfer.objects.count())

    assert len(tell(world, outcome(row, S.FILLED, "1", "3200"))) == 1

    assert (Order.objects.count(), Position.objects.count(), Transfer.objects.count()) == before


def test_venue_for_account_routes_bound_accounts_only(world):
    portfolio = world.leader()
    paper = world.follower(portfolio)
    bound = bound_follower(portfolio)

    assert venue_for_account(paper.copy_account_id).name == "paper"
    assert venue_for_account(bound.copy_account_id).name == "exchange"
    assert Account.objects.get(pk=bound.copy_account_id).exchange_account.user_id == bound.follower_id


def _bound_chunk_queries(world, settings, followers: int) -> tuple[int, int]:
    """Queries of one chunk deciding ``followers`` bound copies, and of the
    applier taking all their fills in one answer."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from copytrading import propagation
    from portfolios.services import portfolio_order_place

    settings.FANOUT_CHUNK_SIZE = followers
    portfolio = world.leader()
    subs = []
    for _ in range(followers):
        sub = world.follower(portfolio)
        Account.objects.filter(pk=sub.copy_account_id).update(exchange_account=linked_account(sub.follower))
        subs.append(sub)
    (event,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("2"), leverage=10)
    (chunk_id,) = propagation.event_start(event.pk)
    with CaptureQueriesContext(connection) as chunk:
        assert propagation.chunk_propagate(chunk_id).copied == followers
    rows = list(ExchangeOrder.objects.filter(leader_event_id=event.pk))
    assert len(rows) == followers
    with CaptureQueriesContext(connection) as applier:
        record_outcomes([outcome(r, S.FILLED, "1", "3200") for r in rows])
    assert Position.objects.filter(subscription_id__in=[s.pk for s in subs], status=PositionStatus.OPEN).count() == (
        followers
    )
    event.refresh_from_db()
    assert event.status == LeaderEventStatus.DONE
    assert ledger_check().ok
    return len(chunk.captured_queries), len(applier.captured_queries)


def test_a_chunk_and_the_applier_cost_the_same_queries_for_3_or_9_bound_followers(world, settings):
    assert _bound_chunk_queries(world, settings, 3) == _bound_chunk_queries(world, settings, 9)


def test_an_order_cancelled_after_a_partial_fill_keeps_what_filled(world):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    (row,) = exchange_orders_of(bound)
    tell(world, outcome(row, S.PARTIALLY_FILLED, "0.4", "3200"))

    tell(world, outcome(row, S.CANCELLED, "0.4", "3200"))

    order = Order.objects.get(pk=row.order_id)
    assert (order.status, order.quantity, order.price, order.reserved) == (
        OrderStatus.FILLED, D("0.40"), D("3200"), D("0"),
    )  # fmt: skip
    assert mirrors_of(bound).get().quantity == D("0.40")
    assert wallet(bound).locked == trade_math.margin_for(D("0.4"), D("3200"), 10)  # the rest was given back
    execution = Execution.objects.get(event=event, subscription_id=bound.pk)
    assert (execution.outcome, execution.follower_quantity) == ("COPIED", D("0.40"))
    event.refresh_from_db()
    assert event.status == LeaderEventStatus.DONE
    assert ledger_check().ok


def test_spot_copies_hold_the_quote_then_the_bought_asset(world):
    from copytrading.models import Holding

    portfolio = world.leader(mode="spot")
    bound = bound_follower(portfolio)
    world.trade(portfolio, "ETH/USDT", "buy", "2")
    (buy,) = exchange_orders_of(bound)
    order = Order.objects.get(pk=buy.order_id)
    assert (buy.symbol, buy.side, buy.quantity, buy.reduce_only) == ("ETH/USDT", "buy", D("1"), False)
    assert wallet(bound).locked == order.reserved == D("3200")  # the cost, held until the fill

    tell(world, outcome(buy, S.FILLED, "1", "3190"))

    holding = Holding.objects.get(account_id=bound.copy_account_id, asset="ETH")
    assert (holding.quantity, holding.cost_basis, holding.reserved) == (D("1"), D("3190"), D("0"))
    assert (wallet(bound).balance, wallet(bound).locked) == (D("1810"), D("0"))

    world.trade(portfolio, "ETH/USDT", "sell", "1")
    sell = exchange_orders_of(bound)[-1]
    assert (sell.side, sell.quantity) == ("sell", D("0.5"))
    holding.refresh_from_db()
    assert holding.reserved == D("0.5")  # the base a pending sale holds
    tell(world, outcome(sell, S.FILLED, "0.5", "3300"))
    holding.refresh_from_db()
    assert (holding.quantity, holding.reserved) == (D("0.5"), D("0"))
    assert wallet(bound).balance == D("1810") + D("1650")
    assert ledger_check().ok
