"""``portfolio:<id>`` on the live stream, for its leader only (registered in
apps.py): the trading account's open positions and holdings at the live
marks, its equity and unrealized PnL, and the follower count."""

from collections.abc import Mapping
from decimal import Decimal

from copytrading.models import Account
from copytrading.stream.book import Book
from copytrading.stream.protocol import ProtocolError
from copytrading.stream.selectors import book_load, marks_at
from copytrading.stream.topics import Key, Marks, StateTopic, register_topic
from portfolios.models import Portfolio
from portfolios.stats_data import live_followers


class PortfolioTopic(StateTopic):
    def __init__(self, user_id: int, name: str, message: Mapping) -> None:
        super().__init__(user_id, name, message)
        _, _, tail = name.partition(":")
        if not tail.isdigit() or len(tail) > 18:
            raise ProtocolError("INVALID_TOPIC", "Name a portfolio by id: portfolio:<id>.", name[:60])
        self.portfolio_id = int(tail)
        self._account = 0
        self._status = ""
        self._balance = Decimal(0)
        self._followers = 0
        self._book = Book()

    def read(self, initial: bool) -> object:
        row = (
            Portfolio.objects.filter(pk=self.portfolio_id, leader_id=self.user_id)
            .values_list("trading_account_id", "status")
            .first()
        )
        if row is None:
            # Another leader's portfolio is as absent as a missing one.
            raise ProtocolError("NOT_FOUND", "No portfolio of yours with this id.", self.name)
        account, status = row
        balance = Account.objects.filter(pk=account).values_list("balance", flat=True).first() or Decimal(0)
        book = book_load([account])
        followers = len(live_followers([self.portfolio_id]))
        return account, status, balance, followers, book, marks_at(book.instruments())

    def apply(self, data: object, initial: bool) -> dict:
        self._account, self._status, self._balance, self._followers, self._book, marks = data
        return marks

    def watch_keys(self) -> set[Key]:
        return {("user", self.user_id), ("portfolio", self.portfolio_id), ("account", self._account)}

    def instruments(self) -> set[int]:
        return self._book.instruments()

    def rows(self, marks: Marks) -> dict[str, dict]:
        return {**self._book.position_views(marks), **self._book.holding_views(marks)}

    def extra(self, marks: Marks) -> dict:
        f = self._book.figures([self._account], marks)[self._account]
        return {
            "portfolio_id": self.portfolio_id,
            "status": self._status,
            "followers": self._followers,
            "balance": self._balance,
            "equity": f.equity(self._balance),
            "unrealized_pnl": f.unrealized_pnl,
        }


def register() -> None:
    register_topic("portfolio", PortfolioTopic)
