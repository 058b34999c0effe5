"""Issue #15 end to end, against the exchange double through ccxt: a leader
trades on their own exchange account; the trade poll turns the fill into a
leader event; the fan-out decides every exchange-bound follower in one pass
and commits pending orders; the submitter places them on the double; the
fills come back and become the mirrors. Every follower gets exactly one order
per leader trade, with its quantity rounded to the market's step, and the
service's mirror equals the follower's position on the double."""

from decimal import Decimal

import pytest

from copytrading.exchanges.models import ExchangeOrder, ExchangeOrderStatus
from copytrading.models import Execution, LeaderEvent, Position, PositionStatus
from followers.services import subscription_create
from portfolios import exchange
from tests.exchanges.submitting import link_accounts, submit_settings  # noqa: F401
from tests.portfolios.test_exchange_leader import BTC, bound, leader, linked, on_exchange, portfolio, synced  # noqa: F401

D = Decimal
# Progressive sizing: the follower's quantity is the leader's times the multiplier,
# floored to BTCUSDT's step (0.001) on the double; below 100 USDT of notional
# (at the double's 64,000 mark) the copy is skipped.
MULTIPLIERS = {"whole": "1", "third": "0.37", "eighth": "0.123", "tiny": "0.015"}


@pytest.fixture
def followers(bound, exchange_double, submit_settings):  # noqa: F811
    from copytrading.services import wallet_deposit

    accounts = link_accounts(exchange_double, len(MULTIPLIERS), prefix="follower")
    subscriptions = {}
    for (name, multiplier), account in zip(MULTIPLIERS.items(), accounts, strict=True):
        wallet_deposit(user=account.user, amount=D("9000"))
        subscriptions[name] = subscription_create(
            follower=account.user, portfolio=bound, amount=D("9000"), multiplier=D(multiplier),
            exchange_account_id=account.pk,
        )  # fmt: skip
    return subscriptions


def poll(bound_portfolio, capture):
    with capture(execute=True):
        return exchange.leader_trades_poll(account_id=bound_portfolio.trading_account_id)


def on_double(double, subscription):
    """The follower's position on the double (signed) and their orders' client ids."""
    account = double.state.accounts[_key_of(subscription.copy_account.exchange_account)]
    position = account.positions.get("BTCUSDT")
    return (position.amount if position else D(0)), sorted(o.client_order_id for o in account.orders.values())


def _key_of(exchange_account) -> str:
    from copytrading.exchanges import crypto

    return crypto.decrypt(exchange_account.api_key_encrypted)


def mirror_quantity(subscription) -> Decimal:
    position = Position.objects.filter(account_id=subscription.copy_account_id, status=PositionStatus.OPEN).first()
    return position.quantity if position else D(0)


@pytest.mark.django_db
def test_a_leader_fill_on_the_exchange_becomes_one_order_per_follower_on_the_exchange(
    bound,  # noqa: F811
    followers,
    exchange_double,
    django_capture_on_commit_callbacks,
):
    on_exchange().create_order(BTC, "market", "buy", 0.1)
    poll(bound, django_capture_on_commit_callbacks)

    (event,) = LeaderEvent.objects.filter(portfolio_id=bound.pk)
    expected = {"whole": D("0.100"), "third": D("0.037"), "eighth": D("0.012")}
    for name, quantity in expected.items():
        sub = followers[name]
        position, client_ids = on_double(exchange_double, sub)
        assert client_ids == [f"ct-{event.pk}-{sub.pk}"]
        assert position == quantity == mirror_quantity(sub)
        row = ExchangeOrder.objects.get(subscription_id=sub.pk)
        assert row.status == ExchangeOrderStatus.FILLED and row.attempts == 1
        assert row.decided_at <= row.submitted_at <= row.acknowledged_at <= row.filled_at
    tiny = followers["tiny"]
    assert on_double(exchange_double, tiny) == (D(0), [])
    assert Execution.objects.get(subscription_id=tiny.pk).reason_code == "BELOW_MIN_NOTIONAL"
    assert sum(exchange_double.state.client_order_ids().values()) == 1 + len(expected)  # the leader's + one each

    # The same trades read again (an overlapping poll): nothing new anywhere.
    poll(bound, django_capture_on_commit_callbacks)
    assert LeaderEvent.objects.filter(portfolio_id=bound.pk).count() == 1
    assert sum(exchange_double.state.client_order_ids().values()) == 1 + len(expected)


@pytest.mark.django_db
def test_a_partial_close_then_a_close_keep_the_exchange_and_the_mirrors_equal(
    bound,  # noqa: F811
    followers,
    exchange_double,
    django_capture_on_commit_callbacks,
):
    on_exchange().create_order(BTC, "market", "buy", 0.1)
    poll(bound, django_capture_on_commit_callbacks)
    on_exchange().create_order(BTC, "market", "sell", 0.04, params={"reduceOnly": True})
    poll(bound, django_capture_on_commit_callbacks)

    for name in ("whole", "third", "eighth"):
        sub = followers[name]
        position, client_ids = on_double(exchange_double, sub)
        assert D(0) < position < D("0.100")
        assert position == mirror_quantity(sub)
        assert len(client_ids) == len(set(client_ids)) == 2

    on_exchange().create_order(BTC, "market", "sell", 0.06, params={"reduceOnly": True})
    poll(bound, django_capture_on_commit_callbacks)

    kinds = list(LeaderEvent.objects.filter(portfolio_id=bound.pk).order_by("seq").values_list("kind", flat=True))
    assert kinds == ["position_open", "position_reduce", "position_close"]
    for name in ("whole", "third", "eighth"):
        sub = followers[name]
        position, client_ids = on_double(exchange_double, sub)
        assert position == D(0) == mirror_quantity(sub)
        assert len(client_ids) == len(set(client_ids)) == 3
    assert all(c == 1 for c in exchange_double.state.client_order_ids().values())
