"""A small trading world for the watchdog tests: a leader trades through the
portfolio services, followers' mirrors come from the real propagation engine
(eager Celery, dispatched on commit), prices move through ``price_set``."""

from decimal import Decimal

import pytest

from copytrading.models import Account, Instrument, Position, PositionStatus
from copytrading.services import price_set, wallet_deposit
from followers.models import Subscription
from followers.services import subscription_create
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place, portfolio_position_close
from tests.factories import UserFactory

D = Decimal
ETH_PERP = "ETH/USDT:USDT"
BTC_PERP = "BTC/USDT:USDT"


class World:
    def __init__(self, capture):
        self.capture = capture

    def leader(self, *, fund: str = "50000", mode: str = "margin"):
        user = UserFactory()
        wallet_deposit(user=user, amount=D(fund))
        portfolio = portfolio_create(leader=user, name=f"{user.username}'s book", mode=mode)
        portfolio_fund(portfolio=portfolio, amount=D(fund))
        return portfolio

    def follower(self, portfolio, *, amount: str = "5000", multiplier: str | None = "0.5", **options) -> Subscription:
        user = UserFactory()
        wallet_deposit(user=user, amount=D(amount))
        if multiplier is not None:
            options["multiplier"] = D(multiplier)
        return subscription_create(follower=user, portfolio=portfolio, amount=D(amount), **options)

    def trade(self, portfolio, symbol: str, side: str, quantity: str, leverage: int = 10):
        with self.capture(execute=True):
            return portfolio_order_place(
                portfolio=portfolio, symbol=symbol, side=side, quantity=D(quantity), leverage=leverage
            )

    def limit(self, portfolio, symbol: str, side: str, quantity: str, price: str, leverage: int = 10):
        with self.capture(execute=True):
            (event,) = portfolio_order_place(
                portfolio=portfolio,
                symbol=symbol,
                side=side,
                quantity=D(quantity),
                leverage=leverage,
                order_type="limit",
                price=D(price),
            )
        return event

    def close(self, portfolio, position_id: int):
        with self.capture(execute=True):
            return portfolio_position_close(portfolio=portfolio, position_id=position_id)

    def price(self, symbol: str, price: str) -> None:
        with self.capture(execute=True):
            price_set(instrument=Instrument.objects.get(symbol=symbol), price=D(price))


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(django_capture_on_commit_callbacks)


def open_mirrors(sub: Subscription) -> list[Position]:
    return list(Position.objects.filter(account_id=sub.copy_account_id, status=PositionStatus.OPEN).order_by("pk"))


def equity(sub: Subscription) -> Decimal:
    """The copy wallet's equity, computed here from its rows and the marks."""
    total = Account.objects.get(pk=sub.copy_account_id).balance
    for p in open_mirrors(sub):
        mark = Instrument.objects.get(pk=p.instrument_id).mark_price
        total += (mark - p.entry_price) * p.quantity if p.side == "long" else (p.entry_price - mark) * p.quantity
    return total


def status_of(sub: Subscription) -> tuple[str, str]:
    sub.refresh_from_db()
    return sub.status, sub.pause_reason
