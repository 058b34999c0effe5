"""A small trading world for the margin propagation tests: a leader, followers,
and the leader's actions through the portfolio services, each dispatched on
commit (eager Celery) exactly as in production."""

from decimal import Decimal

from copytrading.models import (
    Account,
    Execution,
    Instrument,
    LeaderEvent,
    Order,
    Position,
    Transfer,
)
from copytrading.services import price_set, wallet_deposit
from followers.models import Subscription
from followers.services import subscription_create
from portfolios import services as portfolio_services
from portfolios.services import portfolio_create, portfolio_fund
from tests.factories import UserFactory

D = Decimal
ETH_PERP = "ETH/USDT:USDT"
BTC_PERP = "BTC/USDT:USDT"


class World:
    def __init__(self, instruments, capture):
        self.instruments = instruments
        self.capture = capture

    # --- people -------------------------------------------------------------

    def leader(self, *, mode: str = "margin", fund: str = "20000"):
        user = UserFactory()
        wallet_deposit(user=user, amount=D(fund) + D("1000"))
        portfolio = portfolio_create(leader=user, name=f"{user.username}'s book", mode=mode)
        portfolio_fund(portfolio=portfolio, amount=D(fund))
        return portfolio

    def follower(self, portfolio, *, amount: str = "5000", multiplier: str = "0.5", **settings) -> Subscription:
        user = UserFactory()
        wallet_deposit(user=user, amount=D(amount))
        return subscription_create(
            follower=user, portfolio=portfolio, amount=D(amount), multiplier=D(multiplier), **settings
        )

    # --- the leader's actions (dispatched on commit) ------------------------------

    def trade(self, portfolio, symbol: str, side: str, quantity: str, leverage: int = 10) -> list[LeaderEvent]:
        with self.capture(execute=True):
            return portfolio_services.portfolio_order_place(
                portfolio=portfolio, symbol=symbol, side=side, quantity=D(quantity), leverage=leverage
            )

    def limit(self, portfolio, symbol: str, side: str, quantity: str, price: str, leverage: int = 10) -> LeaderEvent:
        with self.capture(execute=True):
            (event,) = portfolio_services.portfolio_order_place(
                portfolio=portfolio,
                symbol=symbol,
                side=side,
                quantity=D(quantity),
                leverage=leverage,
                order_type="limit",
                price=D(price),
            )
        return event

    def reprice(self, portfolio, order_id: int, price: str) -> LeaderEvent:
        with self.capture(execute=True):
            return portfolio_services.portfolio_order_reprice(portfolio=portfolio, order_id=order_id, price=D(price))

    def cancel(self, portfolio, order_id: int) -> LeaderEvent:
        with self.capture(execute=True):
            return portfolio_services.portfolio_order_cancel(portfolio=portfolio, order_id=order_id)

    def tpsl(self, portfolio, position_id: int, **prices) -> LeaderEvent:
        values = {k: D(v) if v is not None else None for k, v in prices.items()}
        with self.capture(execute=True):
            return portfolio_services.portfolio_position_tpsl_set(
                portfolio=portfolio, position_id=position_id, **values
            )

    def close(self, portfolio, position_id: int, quantity: str | None = None) -> LeaderEvent:
        with self.capture(execute=True):
            return portfolio_services.portfolio_position_close(
                portfolio=portfolio, position_id=position_id, quantity=D(quantity) if quantity else None
            )

    def price(self, symbol: str, price: str) -> list[LeaderEvent]:
        """Set the mark (matching runs); returns the leader events it created."""
        last = LeaderEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        with self.capture(execute=True):
            price_set(instrument=Instrument.objects.get(symbol=symbol), price=D(price))
        return list(LeaderEvent.objects.filter(pk__gt=last).order_by("pk"))


# --- reading the outcome ------------------------------------------------------------


def outcomes(event: LeaderEvent) -> dict[int, tuple[str, str]]:
    return {
        e.subscription_id: (e.outcome, e.reason_code)
        for e in Execution.objects.filter(event=event).order_by("subscription_id")
    }


def mirrors_of(sub: Subscription):
    return Position.objects.filter(account_id=sub.copy_account_id).order_by("pk")


def mirror_orders_of(sub: Subscription):
    return Order.objects.filter(account_id=sub.copy_account_id, order_type="limit").order_by("pk")


def wallet(sub_or_portfolio) -> Account:
    account_id = getattr(sub_or_portfolio, "copy_account_id", None) or sub_or_portfolio.trading_account_id
    return Account.objects.get(pk=account_id)


def footprint():
    """Everything a repeated price update or a refused call must not change."""
    return (
        Order.objects.count(),
        Transfer.objects.count(),
        Execution.objects.count(),
        LeaderEvent.objects.count(),
        sorted(Account.objects.values_list("pk", "balance", "locked")),
        sorted(Position.objects.values_list("pk", "quantity", "margin", "status", "take_profit", "stop_loss")),
        sorted(Order.objects.values_list("pk", "status", "price", "reserved")),
    )
