"""Leader event → followers, through the services and a real database.

Trades are placed with the portfolio services; their on-commit dispatch runs
the (eager) Celery tasks, exactly as in production. Replays call the tasks and
the engine again by hand.
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from copytrading import propagation, tasks
from copytrading.errors import DomainError
from copytrading.ledger import ledger_check
from copytrading.models import (
    Account,
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
    Transfer,
)
from copytrading.money import q8_down, q8_up
from copytrading.services import price_set, wallet_deposit
from followers.models import Subscription
from followers.services import subscription_create
from portfolios.services import (
    portfolio_create,
    portfolio_fund,
    portfolio_order_place,
    portfolio_order_reprice,
    portfolio_position_close,
    portfolio_position_tpsl_set,
)
from tests.factories import UserFactory

D = Decimal
ETH_PERP = "ETH/USDT:USDT"


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 2
    return World(instruments, django_capture_on_commit_callbacks)


class World:
    def __init__(self, instruments, capture):
        self.instruments = instruments
        self.capture = capture

    def leader(self, *, mode: str = "margin", fund: str = "20000"):
        user = UserFactory()
        wallet_deposit(user=user, amount=D(fund) + D("1000"))
        portfolio = portfolio_create(leader=user, name=f"{user.username}'s book", mode=mode)
        portfolio_fund(portfolio=portfolio, amount=D(fund))
        return portfolio

    def follower(self, portfolio, *, amount: str = "5000", multiplier: str = "0.5") -> Subscription:
        user = UserFactory()
        wallet_deposit(user=user, amount=D(amount))
        return subscription_create(follower=user, portfolio=portfolio, amount=D(amount), multiplier=D(multiplier))

    def trade(self, portfolio, symbol: str, side: str, quantity: str, leverage: int = 10) -> list[LeaderEvent]:
        """The leader's order, with its events dispatched on commit."""
        with self.capture(execute=True):
            return portfolio_order_place(
                portfolio=portfolio, symbol=symbol, side=side, quantity=D(quantity), leverage=leverage
            )

    def close(self, portfolio, position_id: int, quantity: str | None = None) -> LeaderEvent:
        with self.capture(execute=True):
            return portfolio_position_close(
                portfolio=portfolio, position_id=position_id, quantity=D(quantity) if quantity else None
            )

    def price(self, symbol: str, price: str) -> None:
        price_set(instrument=Instrument.objects.get(symbol=symbol), price=D(price))


def outcomes(event: LeaderEvent) -> dict[int, tuple[str, str]]:
    return {
        e.subscription_id: (e.outcome, e.reason_code)
        for e in Execution.objects.filter(event=event).order_by("subscription_id")
    }


def mirrors_of(sub: Subscription):
    return Position.objects.filter(account_id=sub.copy_account_id).order_by("pk")


def wallet(sub: Subscription) -> Account:
    return Account.objects.get(pk=sub.copy_account_id)


def footprint():
    """Everything a replay must not add to or change."""
    return (
        Order.objects.count(),
        Transfer.objects.count(),
        Execution.objects.count(),
        Position.objects.count(),
        sorted(Account.objects.values_list("pk", "balance", "locked")),
        sorted(Position.objects.values_list("pk", "quantity", "margin", "status")),
    )


def test_replaying_events_and_chunks_adds_nothing(world):
    portfolio = world.leader()
    subs = [world.follower(portfolio) for _ in range(5)]
    (open_event,) = world.trade(portfolio, ETH_PERP, "buy", "1")

    chunks = list(PropagationChunk.objects.filter(event=open_event).order_by("index"))
    assert len(chunks) == 3  # 5 followers, chunks of 2
    assert all(c.status == ChunkStatus.DONE and c.attempts == 1 for c in chunks)
    open_event.refresh_from_db()
    assert open_event.status == LeaderEventStatus.DONE
    assert set(outcomes(open_event).values()) == {("COPIED", "")}
    assert all(mirrors_of(s).get().quantity == D("0.5") for s in subs)

    world.price(ETH_PERP, "3300")
    close_event = world.close(portfolio, open_event.payload["leader_position_id"])
    assert set(outcomes(close_event).values()) == {("COPIED", "")}
    assert Transfer.objects.filter(kind="REALIZED_PNL").count() == 5 + 1  # followers + leader
    before = footprint()

    for event in (open_event, close_event):
        # The event again (a duplicate message): already claimed, nothing to do.
        assert tasks.propagate_event(event.pk) == 0
        # Each chunk again: its checkpoint is done.
        for chunk in PropagationChunk.objects.filter(event=event):
            assert tasks.propagate_chunk(chunk.pk) == {"copied": 0, "skipped": 0, "rejected": 0, "failed": 0}
        # A chunk whose checkpoint was lost (worker died after commit, before the
        # checkpoint was seen): the execution rows make the rerun a no-op.
        PropagationChunk.objects.filter(event=event).update(status=ChunkStatus.PENDING)
        for chunk in PropagationChunk.objects.filter(event=event):
            result = propagation.chunk_propagate(chunk.pk)
            assert (result.copied, result.skipped, result.rejected) == (0, 0, 0)
        assert not PropagationChunk.objects.filter(event=event, status=ChunkStatus.PENDING).exists()

    assert footprint() == before
    for s in subs:
        assert Order.objects.filter(subscription_id=s.pk).count() == 2
        assert Execution.objects.filter(subscription_id=s.pk).count() == 2
        assert wallet(s).balance == D("5050")  # 0.5 x (3300 - 3200)
    assert ledger_check().ok


def test_partial_closes_reduce_every_mirror_by_the_same_fraction(world):
    portfolio = world.leader()
    sizes = {"1": D("10"), "0.5": D("5"), "0.2": D("2")}
    subs = {m: world.follower(portfolio, multiplier=m) for m in sizes}
    (open_event,) = world.trade(portfolio, ETH_PERP, "buy", "10")
    leader_position_id = open_event.payload["leader_position_id"]

    first = world.close(portfolio, leader_position_id, "3")  # 30 %
    second = world.close(portfolio, leader_position_id, "3.5")  # 50 % of the 7 left
    assert (first.kind, first.payload["fraction"]) == ("position_reduce", "0.3")
    assert (second.kind, second.payload["fraction"]) == ("position_reduce", "0.5")

    for multiplier, size in sizes.items():
        sub = subs[multiplier]
        (mirror,) = mirrors_of(sub)  # no second position, no opposite side
        assert mirror.status == PositionStatus.OPEN
        assert mirror.side == "long"
        assert mirror.quantity == size * D("0.35")
        assert mirror.opened_quantity == size
        assert mirror.margin == size * D("3200") / 10 * D("0.35")
        assert wallet(sub).locked == mirror.margin
        orders = list(Order.objects.filter(subscription_id=sub.pk).order_by("pk").values_list("side", "quantity"))
        assert orders == [("buy", size), ("sell", size * D("0.3")), ("sell", size * D("0.35"))]
        assert set(Order.objects.filter(subscription_id=sub.pk).values_list("position_id", flat=True)) == {mirror.pk}
        assert [e.outcome for e in Execution.objects.filter(subscription_id=sub.pk)] == ["COPIED"] * 3
    assert Position.objects.get(pk=leader_position_id).quantity == D("3.5")
    assert ledger_check().ok


def test_side_flip_closes_then_opens_in_order(world):
    portfolio = world.leader()
    subs = [world.follower(portfolio) for _ in range(3)]
    (open_event,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    long_id = open_event.payload["leader_position_id"]

    # Placed without running the on-commit dispatch, to control the order of delivery.
    close_event, short_event = portfolio_order_place(
        portfolio=portfolio, symbol=ETH_PERP, side="sell", quantity=D("5"), leverage=5
    )
    assert (close_event.kind, short_event.kind) == ("position_close", "position_open")
    assert short_event.seq == close_event.seq + 1
    short_id = short_event.payload["leader_position_id"]
    assert short_id != long_id

    # Delivered out of order, the open waits for the close...
    assert tasks.propagate_event(short_event.pk) == 0
    short_event.refresh_from_db()
    assert short_event.status == LeaderEventStatus.PENDING
    assert not Execution.objects.filter(event=short_event).exists()
    # ...which runs, then hands over to the open.
    tasks.propagate_event(close_event.pk)
    for event in (close_event, short_event):
        event.refresh_from_db()
        assert event.status == LeaderEventStatus.DONE
        assert set(outcomes(event).values()) == {("COPIED", "")}

    for sub in subs:
        long_mirror, short_mirror = mirrors_of(sub)
        assert (long_mirror.leader_position_id, long_mirror.status) == (long_id, PositionStatus.CLOSED)
        assert long_mirror.quantity == 0
        assert (short_mirror.leader_position_id, short_mirror.status) == (short_id, PositionStatus.OPEN)
        assert (short_mirror.side, short_mirror.quantity, short_mirror.leverage) == ("short", D("1.5"), 5)
        assert mirrors_of(sub).filter(status=PositionStatus.OPEN).count() == 1
        orders = list(Order.objects.filter(subscription_id=sub.pk).order_by("pk").values_list("side", "quantity"))
        assert orders == [("buy", D("1")), ("sell", D("1")), ("sell", D("1.5"))]
        assert wallet(sub).locked == D("1.5") * D("3200") / 5
    assert ledger_check().ok


def test_a_follower_who_cannot_afford_the_margin_is_rejected_alone(world, settings):
    settings.FANOUT_CHUNK_SIZE = 10
    portfolio = world.leader()
    rich_a = world.follower(portfolio)
    poor = world.follower(portfolio, amount="159.99")  # the mirror needs 0.5 x 3200 / 10 = 160
    rich_b = world.follower(portfolio)
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "1")

    (chunk,) = PropagationChunk.objects.filter(event=event)
    assert (chunk.first_subscription_id, chunk.last_subscription_id) == (rich_a.pk, rich_b.pk)
    assert outcomes(event) == {
        rich_a.pk: ("COPIED", ""),
        poor.pk: ("REJECTED", "INSUFFICIENT_MARGIN"),
        rich_b.pk: ("COPIED", ""),
    }
    rejected = Execution.objects.get(event=event, subscription_id=poor.pk)
    assert (rejected.follower_quantity, rejected.order_id) == (D("0.5"), None)
    assert not Order.objects.filter(subscription_id=poor.pk).exists()
    assert not mirrors_of(poor).exists()
    assert (wallet(poor).balance, wallet(poor).locked) == (D("159.99"), D("0"))
    for sub in (rich_a, rich_b):
        assert mirrors_of(sub).get().quantity == D("0.5")
        assert wallet(sub).locked == D("160")
    assert ledger_check().ok


def test_spot_buy_then_sell_half_mirrors_holdings(world):
    portfolio = world.leader(mode="spot")
    subs = [world.follower(portfolio) for _ in range(3)]
    (buy,) = world.trade(portfolio, "ETH/USDT", "buy", "2", leverage=1)
    assert buy.kind == "spot_buy"
    assert set(outcomes(buy).values()) == {("COPIED", "")}
    for sub in subs:
        holding = Holding.objects.get(account_id=sub.copy_account_id, asset="ETH")
        assert (holding.quantity, holding.cost_basis) == (D("1"), D("3200"))
        assert wallet(sub).balance == D("1800")

    world.price("ETH/USDT", "3300")
    (sell,) = world.trade(portfolio, "ETH/USDT", "sell", "1", leverage=1)
    assert (sell.kind, sell.payload["fraction"]) == ("spot_sell", "0.5")
    assert set(outcomes(sell).values()) == {("COPIED", "")}
    for sub in subs:
        holding = Holding.objects.get(account_id=sub.copy_account_id, asset="ETH")
        assert (holding.quantity, holding.cost_basis) == (D("0.5"), D("1600"))
        assert wallet(sub).balance == D("3450")  # 5000 - 3200 + 0.5 x 3300
        assert list(Order.objects.filter(subscription_id=sub.pk).order_by("pk").values_list("side", "quantity")) == [
            ("buy", D("1")),
            ("sell", D("0.5")),
        ]
    leader_holding = Holding.objects.get(account_id=portfolio.trading_account_id, asset="ETH")
    assert leader_holding.quantity == D("1")
    assert ledger_check().ok


def test_spot_pair_in_another_quote_is_skipped_but_the_leader_trades(world):
    portfolio = world.leader(mode="spot")
    subs = [world.follower(portfolio) for _ in range(2)]
    funded = Account.objects.get(pk=portfolio.trading_account_id).balance
    world.trade(portfolio, "BTC/USDT", "buy", "0.1", leverage=1)  # the BTC that pays for ETH/BTC
    after_btc = Account.objects.get(pk=portfolio.trading_account_id).balance
    follower_balances = {sub.pk: wallet(sub).balance for sub in subs}
    (buy,) = world.trade(portfolio, "ETH/BTC", "buy", "1", leverage=1)
    (sell,) = world.trade(portfolio, "ETH/BTC", "sell", "0.5", leverage=1)

    # Paid and repaid in BTC: the primary-currency wallet does not move, and
    # the USDT cost of the BTC travels as cost basis into ETH and back.
    assert Account.objects.get(pk=portfolio.trading_account_id).balance == after_btc
    held = {h.asset: h for h in Holding.objects.filter(account_id=portfolio.trading_account_id)}
    assert held["ETH"].quantity == D("0.5")
    buy_order, sell_order = Order.objects.filter(
        account_id=portfolio.trading_account_id, instrument__symbol="ETH/BTC"
    ).order_by("pk")
    cost, proceeds = q8_up(buy_order.price), q8_down(D("0.5") * sell_order.price)
    assert held["BTC"].quantity == D("0.1") - cost + proceeds
    assert held["BTC"].cost_basis + held["ETH"].cost_basis == funded - after_btc
    for event in (buy, sell):
        assert outcomes(event) == {s.pk: ("SKIPPED", "SPOT_PAIR_QUOTE_MISMATCH") for s in subs}
    for sub in subs:
        assert not Holding.objects.filter(account_id=sub.copy_account_id, asset="ETH").exists()
        assert wallet(sub).balance == follower_balances[sub.pk]
    assert ledger_check().ok


def test_spot_pair_in_another_quote_needs_the_quote_asset(world):
    portfolio = world.leader(mode="spot")
    with pytest.raises(DomainError) as refused:
        world.trade(portfolio, "ETH/BTC", "buy", "1", leverage=1)
    assert refused.value.code == "INSUFFICIENT_HOLDING"
    assert not Order.objects.filter(account_id=portfolio.trading_account_id).exists()
    assert not LeaderEvent.objects.filter(portfolio_id=portfolio.pk).exists()


def test_chunks_cover_every_subscription_exactly_once(world, settings):
    settings.FANOUT_CHUNK_SIZE = 3
    portfolio = world.leader()
    subs = [world.follower(portfolio) for _ in range(7)]
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    ranges = list(
        PropagationChunk.objects.filter(event=event)
        .order_by("index")
        .values_list("index", "first_subscription_id", "last_subscription_id", "status")
    )
    ids = [s.pk for s in subs]
    assert ranges == [
        (0, ids[0], ids[2], ChunkStatus.DONE),
        (1, ids[3], ids[5], ChunkStatus.DONE),
        (2, ids[6], ids[6], ChunkStatus.DONE),
    ]
    assert sorted(outcomes(event)) == ids


def _chunk_queries(world, followers: int, *, close: bool) -> int:
    """How many queries one chunk of ``followers`` mirrors takes (open, or close with PnL)."""
    portfolio = world.leader()
    for _ in range(followers):
        world.follower(portfolio)
    world.price(ETH_PERP, "3200")
    # Placed without the on-commit dispatch: the engine is driven by hand below.
    (event,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10)
    if close:
        for chunk_id in propagation.event_start(event.pk):
            propagation.chunk_propagate(chunk_id)
        propagation.event_complete(event.pk)
        world.price(ETH_PERP, "3250")
        event = portfolio_position_close(portfolio=portfolio, position_id=event.payload["leader_position_id"])
    (chunk_id,) = propagation.event_start(event.pk)
    transfers_before = Transfer.objects.count()
    with CaptureQueriesContext(connection) as queries:
        result = propagation.chunk_propagate(chunk_id)
    assert result.copied == followers
    # Closing at a new price moves PnL: one transfer per follower, inserted set-based.
    assert Transfer.objects.count() - transfers_before == (followers if close else 0)
    return len(queries)


@pytest.mark.parametrize("close", [False, True], ids=["open", "close-with-pnl"])
def test_chunk_query_count_does_not_grow_with_followers(world, settings, close):
    settings.FANOUT_CHUNK_SIZE = 100
    assert _chunk_queries(world, 5, close=close) == _chunk_queries(world, 40, close=close)


def _event_chunk_queries(world, followers: int, kind: str) -> int:
    """Queries of one chunk of ``followers`` for a limit or TP/SL event."""
    portfolio = world.leader()
    subs = [world.follower(portfolio) for _ in range(followers)]
    world.price(ETH_PERP, "3200")
    if kind == "tpsl_set":
        # A mirrored open first (dispatched), then the TP/SL event driven by hand.
        (opened,) = portfolio_order_place(
            portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10
        )
        for chunk_id in propagation.event_start(opened.pk):
            propagation.chunk_propagate(chunk_id)
        propagation.event_complete(opened.pk)
        event = portfolio_position_tpsl_set(
            portfolio=portfolio,
            position_id=opened.payload["leader_position_id"],
            take_profit=D("3400"),
            stop_loss=D("3000"),
        )
    else:
        (placed,) = portfolio_order_place(
            portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10, order_type="limit",
            price=D("3100"),
        )  # fmt: skip
        event = placed
        if kind == "limit_repriced":
            for chunk_id in propagation.event_start(placed.pk):
                propagation.chunk_propagate(chunk_id)
            propagation.event_complete(placed.pk)
            event = portfolio_order_reprice(
                portfolio=portfolio, order_id=placed.payload["leader_order_id"], price=D("3050")
            )
    (chunk_id,) = propagation.event_start(event.pk)
    with CaptureQueriesContext(connection) as queries:
        result = propagation.chunk_propagate(chunk_id)
    assert result.copied == followers
    if kind == "tpsl_set":
        assert {
            tuple(p)
            for p in Position.objects.filter(subscription_id__in=[s.pk for s in subs]).values_list(
                "take_profit", "stop_loss"
            )
        } == {(D("3400"), D("3000"))}
    else:
        price = D("3050") if kind == "limit_repriced" else D("3100")
        assert Order.objects.filter(subscription_id__in=[s.pk for s in subs], status="open", price=price).count() == (
            followers
        )
    return len(queries)


@pytest.mark.parametrize("kind", ["limit_placed", "limit_repriced", "tpsl_set"])
def test_chunk_query_count_does_not_grow_with_followers_for_limit_and_tpsl_events(world, settings, kind):
    settings.FANOUT_CHUNK_SIZE = 100
    assert _event_chunk_queries(world, 5, kind) == _event_chunk_queries(world, 40, kind)
