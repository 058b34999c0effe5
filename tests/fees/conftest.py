"""A small world for the fee tests: a leader whose portfolio charges a profit
share, followers whose mirrors open and close through the real services and
propagation (eager Celery, dispatched on commit). Closing a mirror accrues
its fee through the venue's close listener (followers/fee_hooks.py); the
helpers below replay what that listener reports and read what it wrote."""

from decimal import Decimal

import pytest

from copytrading.models import Account, AccountKind, Instrument, Position, PositionStatus
from copytrading.services import price_set, wallet_deposit
from fees.models import FeeAccrual, FeeGroup
from fees.services import ClosedMirror, fees_accrue, leader_group_assign
from followers.models import Subscription
from followers.services import subscription_create
from portfolios.models import Portfolio
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place, portfolio_position_close
from tests.factories import UserFactory

D = Decimal
ETH_PERP = "ETH/USDT:USDT"
ETH_SPOT = "ETH/USDT"


class FeeWorld:
    def __init__(self, capture):
        self.capture = capture

    def leader(
        self, *, share: str = "15.00", platform_cut: str | None = "40.00", fund: str = "20000", mode: str = "margin"
    ) -> Portfolio:
        user = UserFactory()
        wallet_deposit(user=user, amount=D(fund) + D("1000"))
        portfolio = portfolio_create(leader=user, name=f"{user.username}'s book", profit_share_pct=D(share), mode=mode)
        portfolio_fund(portfolio=portfolio, amount=D(fund))
        if platform_cut is not None:
            group, _ = FeeGroup.objects.get_or_create(
                name=f"cut {platform_cut}",
                defaults={"max_profit_share_pct": D("50.00"), "platform_cut_pct": D(platform_cut)},
            )
            leader_group_assign(leader=user, fee_group=group)
        return portfolio

    def follower(self, portfolio: Portfolio, *, amount: str = "5000", multiplier: str = "0.5") -> Subscription:
        user = UserFactory()
        wallet_deposit(user=user, amount=D(amount))
        return subscription_create(follower=user, portfolio=portfolio, amount=D(amount), multiplier=D(multiplier))

    def price(self, price: str, symbol: str = ETH_PERP) -> None:
        price_set(instrument=Instrument.objects.get(symbol=symbol), price=D(price))

    def open(self, portfolio: Portfolio, side: str = "buy", quantity: str = "1", leverage: int = 10) -> int:
        """The leader opens; mirrors follow. Returns the leader position id."""
        with self.capture(execute=True):
            (event,) = portfolio_order_place(
                portfolio=portfolio, symbol=ETH_PERP, side=side, quantity=D(quantity), leverage=leverage
            )
        return event.payload["leader_position_id"]

    def close(self, portfolio: Portfolio, leader_position_id: int, quantity: str | None = None) -> None:
        with self.capture(execute=True):
            portfolio_position_close(
                portfolio=portfolio, position_id=leader_position_id, quantity=D(quantity) if quantity else None
            )

    def spot(self, portfolio: Portfolio, side: str, quantity: str = "1", symbol: str = ETH_SPOT) -> None:
        """The leader buys or sells spot at market; copy wallets follow."""
        with self.capture(execute=True):
            portfolio_order_place(portfolio=portfolio, symbol=symbol, side=side, quantity=D(quantity), leverage=1)

    def spot_limit(self, portfolio: Portfolio, side: str, price: str, quantity: str = "1") -> None:
        """The leader's resting spot limit order; mirrors rest with it."""
        with self.capture(execute=True):
            portfolio_order_place(
                portfolio=portfolio, symbol=ETH_SPOT, side=side, quantity=D(quantity), leverage=1,
                order_type="limit", price=D(price),
            )  # fmt: skip

    def spot_round_trip(self, portfolio: Portfolio, entry: str, exit_: str) -> None:
        self.price(entry, ETH_SPOT)
        self.spot(portfolio, "buy")
        self.price(exit_, ETH_SPOT)
        self.spot(portfolio, "sell")

    def round_trip(self, portfolio: Portfolio, entry: str, exit_: str, *, side: str = "buy") -> int:
        self.price(entry)
        leader_position_id = self.open(portfolio, side=side)
        self.price(exit_)
        self.close(portfolio, leader_position_id)
        return leader_position_id


def closed_mirrors(*subscriptions: Subscription) -> list[ClosedMirror]:
    """What the engine's hook reports: every closed mirror of these subscriptions."""
    out = []
    for sub in subscriptions:
        portfolio = Portfolio.objects.get(pk=sub.portfolio_id)
        for p in Position.objects.filter(account_id=sub.copy_account_id, status=PositionStatus.CLOSED).order_by("pk"):
            out.append(
                ClosedMirror(
                    position_id=p.pk,
                    subscription_id=sub.pk,
                    portfolio_id=portfolio.pk,
                    copy_account_id=sub.copy_account_id,
                    leader_user_id=portfolio.leader_id,
                    realized_pnl=p.realized_pnl,
                    profit_share_pct=portfolio.profit_share_pct,
                    fee_model=portfolio.fee_model,
                )
            )
    return out


def accrue(*subscriptions: Subscription) -> list[FeeAccrual]:
    """The accruals of these subscriptions, oldest first. The close listener
    made them when the mirrors closed: reporting the closes again (a replay)
    accrues nothing more."""
    assert fees_accrue(closes=closed_mirrors(*subscriptions)) == []
    return list(FeeAccrual.objects.filter(subscription_id__in=[s.pk for s in subscriptions]).order_by("pk"))


@pytest.fixture
def no_close_listener(monkeypatch):
    """Mirrors close without their fee accruing (the state before the fee is
    taken), for the tests that drive ``fees_accrue`` by hand."""
    from copytrading import venue

    monkeypatch.setattr(venue, "_close_listeners", [])


def balance(account_id: int) -> Decimal:
    return Account.objects.get(pk=account_id).balance


def system_balance(kind: str) -> Decimal:
    account = Account.objects.filter(kind=kind).first()
    return account.balance if account else D("0")


def escrow() -> Decimal:
    return system_balance(AccountKind.FEE_ESCROW)


def platform() -> Decimal:
    return system_balance(AccountKind.PLATFORM_FEES)


@pytest.fixture
def fee_world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return FeeWorld(django_capture_on_commit_callbacks)
