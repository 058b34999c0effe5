"""The lock-order decision on PostgreSQL (copytrading/locks.py): money in and
out of a copy and its settings lock the subscription row only, so they never
wait behind the leader's trades, which hold the portfolio row; and a leader's
trade never waits behind a copy's top-up."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.utils import OperationalError

from copytrading.ledger import ledger_check
from followers.locks import lock_subscription
from followers.services import subscription_pause, subscription_top_up, subscription_withdraw
from portfolios.locks import lock_portfolio
from portfolios.services import portfolio_order_place
from tests.copytrading.world import ETH_PERP, wallet

D = Decimal

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class Holder:
    """Holds a row lock in another connection's open transaction until released."""

    def __init__(self, take):
        self.take = take
        self.locked = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        try:
            with transaction.atomic():
                self.take()
                self.locked.set()
                self.release.wait(20)
        except BaseException as exc:  # noqa: BLE001 (reported to the test)
            self.error = exc
            self.locked.set()
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        assert self.locked.wait(10)
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join(20)
        assert not self.thread.is_alive()


def without_waiting(action):
    """Run ``action`` in a transaction that may not wait for any row lock."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '1s'")
        return action()


def test_a_copy_never_waits_behind_its_leaders_trade(world):
    portfolio = world.leader()
    sub = world.subscribe(portfolio)

    # The leader's trade holds the portfolio row for its whole transaction.
    with Holder(lambda: lock_portfolio(portfolio.pk)):
        without_waiting(lambda: subscription_withdraw(subscription=sub, amount=D("50")))
        without_waiting(lambda: subscription_top_up(subscription=sub, amount=D("50")))
        without_waiting(lambda: subscription_pause(subscription=sub))
        # Only the portfolio's own writes queue behind it.
        with pytest.raises(OperationalError, match="lock timeout"):
            without_waiting(lambda: lock_portfolio(portfolio.pk))

    assert wallet(sub).balance == D("5000")
    assert ledger_check().ok


def test_a_leaders_trade_never_waits_behind_a_copys_top_up(world):
    world.price(ETH_PERP, "3000")
    portfolio = world.leader()
    sub = world.subscribe(portfolio)

    with Holder(lambda: lock_subscription(sub.pk)):  # a top-up in flight
        (event,) = without_waiting(
            lambda: portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"))
        )
    assert event.kind == "position_open"
    assert ledger_check().ok
