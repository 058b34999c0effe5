"""The world the client journeys need, made the way the product makes it.

Set-up (leaders, their trading history, followers, the leaderboard's figures)
goes through the services in the test process: its tasks run inline there
(tests/conftest.py keeps this process eager), so the world is complete when a
helper returns. What a journey *watches happen* goes through the running
server's API instead (``Api``: a leader's order or close with the leader's
token, a price tick with a staff token): the server hands its fan-out to the
real worker over Redis and its stream pushes the result, as in production.
"""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import time_machine
from django.db.models import Sum
from django.utils import timezone

from copytrading import ledger
from copytrading.models import Instrument, Position, PositionStatus, Transfer, TransferKind
from copytrading.services import instruments_seed, price_set, wallet_deposit
from fees.tasks import settle_fees
from followers.models import Subscription
from followers.services import subscription_create
from portfolios.models import Portfolio
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place, portfolio_position_close
from portfolios.stats import stats_refresh
from tests.factories import PASSWORD, StaffFactory, UserFactory, token_for

D = Decimal
BTC_PERP = "BTC/USDT:USDT"
ETH_PERP = "ETH/USDT:USDT"
ETH_SPOT = "ETH/USDT"

__all__ = ["PASSWORD", "Api", "Leader"]


# --- people and money --------------------------------------------------------------


def person(username: str, *, deposit: str | None = None):
    """A user who can log in with ``PASSWORD``, with ``deposit`` in their main wallet."""
    user = UserFactory(username=username)
    if deposit:
        wallet_deposit(user=user, amount=D(deposit))
    return user


def staff_token() -> str:
    """An API token of a staff member: the staff price API takes it."""
    return token_for(StaffFactory(username="price-desk"))


def main_balance(user) -> Decimal:
    return ledger.main_account_for(user).balance


def money_back(user) -> tuple[Decimal, Decimal, Decimal]:
    """What the ledger says of a follower's copies: ``(paid into copy
    wallets, returned from them, main wallet now)``."""
    main = ledger.main_account_for(user)

    def total(**filters) -> Decimal:
        return Transfer.objects.filter(**filters).aggregate(s=Sum("amount"))["s"] or D("0")

    return (
        total(debit=main, kind=TransferKind.COPY_FUND),
        total(credit=main, kind=TransferKind.COPY_RETURN),
        main.balance,
    )


# --- leaders -------------------------------------------------------------------------


@dataclass
class Leader:
    user: object
    portfolio: Portfolio

    @property
    def pk(self) -> int:
        return self.portfolio.pk


def leader(
    username: str,
    name: str,
    *,
    mode: str = "margin",
    share: str = "20",
    fund: str = "20000",
    min_investment: str = "100",
) -> Leader:
    """A leader with a funded public portfolio (no trades yet)."""
    user = person(username, deposit=str(D(fund) + 1000))
    portfolio = portfolio_create(
        leader=user,
        name=name,
        mode=mode,
        min_investment=D(min_investment),
        profit_share_pct=D(share),
        description=f"{name}: a test book.",
    )
    portfolio_fund(portfolio=portfolio, amount=D(fund))
    return Leader(user, portfolio)


def set_price(symbol: str, price: str) -> None:
    price_set(instrument=Instrument.objects.get(symbol=symbol), price=D(price))


def round_trip(portfolio: Portfolio, symbol: str, quantity: str, *, to: str, side: str = "buy") -> None:
    """The leader opens at the current mark, the mark moves to ``to``, the
    leader closes: two leader events and a closed trade."""
    portfolio_order_place(portfolio=portfolio, symbol=symbol, side=side, quantity=D(quantity), leverage=10)
    set_price(symbol, to)
    position = Position.objects.get(
        account_id=portfolio.trading_account_id, instrument__symbol=symbol, status=PositionStatus.OPEN
    )
    portfolio_position_close(portfolio=portfolio, position_id=position.pk)


def _days_ago(days: int):
    """Services called inside it record their rows ``days`` ago (the clock runs on)."""
    return time_machine.travel(timezone.now() - timedelta(days=days), tick=True)


def trading_history(books: dict) -> None:
    """Closed trades spread over the last days (the leaderboard's sparklines
    and the portfolio's equity chart have days to draw), at sizes a 2,000 copy
    still takes: ``margin`` wins twice and loses once (the copy dialog's
    preview replays its 6 events), ``swing`` wins once (ROI 3 %), ``carry``
    loses once (ROI -0.25 %). The marks end where ``instruments_seed`` put them."""
    margin, swing, carry = (books[name].portfolio for name in ("margin", "swing", "carry"))
    with _days_ago(3):
        round_trip(margin, ETH_PERP, "2", to="3360")
        set_price(ETH_PERP, "3200")
    with _days_ago(2):
        round_trip(margin, BTC_PERP, "0.2", to="63000")
        set_price(BTC_PERP, "64000")
        round_trip(swing, ETH_PERP, "3", to="3400")
        set_price(ETH_PERP, "3200")
    with _days_ago(1):
        round_trip(margin, ETH_PERP, "2", to="3300")
        round_trip(carry, BTC_PERP, "0.1", to="63500")
    set_price(ETH_PERP, "3200")
    set_price(BTC_PERP, "64000")


def leaderboard_refresh(*portfolios: Portfolio) -> None:
    """The figures the leaderboard lists (the 5-minute job's work, done now)."""
    stats_refresh(portfolio_ids=[p.pk for p in portfolios])


def follow(portfolio: Portfolio, user, *, amount: str = "5000", template: str = "balanced") -> Subscription:
    return subscription_create(follower=user, portfolio=portfolio, amount=D(amount), template=template)


def world(*, spot_too: bool = True) -> dict:
    """The leaderboard a journey starts from: three margin books, opened four
    days ago, whose ROIs differ (``margin``, the one to copy, has the longest
    history), and a spot book (which the Margin tab must leave out)."""
    instruments_seed()
    with _days_ago(4):
        books = {
            "margin": leader("momentum-lead", "Momentum Margin"),
            "swing": leader("swing-lead", "Swing Desk", share="10"),
            "carry": leader("carry-lead", "Careful Carry", share="5"),
        }
    trading_history(books)
    if spot_too:
        books["spot"] = leader("spot-lead", "Steady Spot", mode="spot")
        portfolio_order_place(portfolio=books["spot"].portfolio, symbol=ETH_SPOT, side="buy", quantity=D("1"))
    leaderboard_refresh(*(b.portfolio for b in books.values()))
    return books


def settle_like_beat() -> dict:
    """The minute job beat schedules (config/celery.py, ``fee-settlement``):
    accrued profit share moves from escrow to the leader's profit account."""
    return settle_fees()


# --- the running server's API -----------------------------------------------------


class ApiError(AssertionError):
    pass


class Api:
    """JSON calls to the running server with an API token."""

    def __init__(self, server, token: str) -> None:
        self.base = f"{server.url}/api/v1"
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None, *, expect: tuple[int, ...] = (200, 201, 202)):
        request = urllib.request.Request(
            f"{self.base}/{path.lstrip('/')}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        answer = json.loads(payload) if payload else None
        if status not in expect:
            raise ApiError(f"{method} {path}: {status} {answer}")
        return answer

    # the staff price API
    def tick(self, symbol: str, price: str) -> dict:
        return self.call("POST", "market/prices", {"symbol": symbol, "price": price})

    # a leader's trading
    def order(self, portfolio_id: int, symbol: str, side: str, quantity: str, leverage: int = 10) -> dict:
        body = {"symbol": symbol, "side": side, "quantity": quantity, "leverage": leverage}
        return self.call("POST", f"portfolios/{portfolio_id}/orders", body)

    def open_positions(self, portfolio_id: int) -> list[dict]:
        rows = self.call("GET", f"portfolios/{portfolio_id}/positions")
        rows = rows["results"] if isinstance(rows, dict) else rows
        return [r for r in rows if r.get("status", "open") == "open"]


def leader_api(server, book: Leader) -> Api:
    return Api(server, token_for(book.user))


def staff_api(server) -> Api:
    return Api(server, staff_token())
