"""What the matching passes share: the leader book hook (the core locks
portfolios without importing the app above it), the rows and results of a
match, and the venue constraints of an instrument."""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from copytrading.decisions import LeaderStep
from copytrading.models import Instrument, LeaderEvent
from copytrading.sizing import Constraints


class LeaderBook(Protocol):
    def lock_portfolios(self, account_ids: list[int]) -> dict[int, int]:
        """Row-lock, in primary-key order, the portfolios that trade from these
        accounts; returns {trading account id: portfolio id}. One query."""


_book: LeaderBook | None = None


def register_leader_book(book: LeaderBook) -> None:
    global _book
    _book = book


def leader_book() -> LeaderBook:
    if _book is None:
        raise RuntimeError("no LeaderBook registered (is the portfolios app installed?)")
    return _book


RESTING_FIELDS = (
    "pk", "account_id", "side", "quantity", "price", "leverage", "reserved", "leader_order_id", "subscription_id",
)  # fmt: skip


@dataclass(slots=True)
class Resting:
    pk: int
    account_id: int
    side: str
    quantity: Decimal
    price: Decimal
    leverage: int
    reserved: Decimal
    leader_order_id: int | None
    subscription_id: int | None


@dataclass
class LeaderFill:
    """How a leader's limit order filled: what its mirrors follow."""

    steps: list[LeaderStep]
    before_position_id: int | None  # the leader position the fill netted against
    open_position_id: int | None  # the leader position it opened or increased
    order_quantity: Decimal


@dataclass
class MatchResult:
    filled: list[int] = field(default_factory=list)  # order ids
    ended: dict[int, str] = field(default_factory=dict)  # order id -> cancelled / rejected
    triggered: dict[int, str] = field(default_factory=dict)  # position id -> trigger
    events: list[LeaderEvent] = field(default_factory=list)


def constraints_of(instrument: Instrument) -> Constraints:
    return Constraints(
        qty_step=instrument.qty_step,
        min_qty=instrument.min_qty,
        max_qty=instrument.max_qty,
        min_notional=instrument.min_notional,
    )
