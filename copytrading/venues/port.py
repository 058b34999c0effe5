"""The venue port: what the engine asks of any venue, and the values it speaks.

The engine (the propagation chunk, the leader's services, the reconciler and
a follower's manual close) reaches a venue only through ``Venue``; which venue
serves whom is decided in one place, ``copytrading.venues`` (today: always
the paper venue).

Two faces:
- **The fan-out batch** (``execute``): one call per chunk with every order the
  chunk's decisions make (place, amend, cancel, TP/SL), inside the chunk's
  transaction, acknowledged in order. The paper venue fills market orders
  there and then (``FILLED`` with the order's id); an external venue answers
  ``PENDING`` with the order's deterministic ``client_order_id`` and its fills
  arrive later through the inbox (copytrading.inbox), so a resend after an
  ambiguous timeout finds the order instead of placing it twice.
- **One account's orders** (a leader's API call, a follower's manual close,
  the reconciler): place, amend, cancel, close, TP/SL, leverage; each returns
  what the venue did (``Executed`` steps for fills).
- **Reads**: balances, open positions and fills of accounts.

Requests carry the engine's own records where a venue needs them to act in
place (``position``: the mirror the order changes, ``holding``: the spot
holding), already row-locked by the chunk: the paper venue writes them; an
external venue only reads their ids.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from copytrading.money import ZERO

# Statuses an acknowledgement can carry (Order.status values, plus PENDING).
FILLED, OPEN, CANCELLED, REJECTED = "filled", "open", "cancelled", "rejected"
PENDING = "pending"  # accepted by an external venue; the fill comes through the inbox

# PlaceOrder.action of a new resting limit (the fill actions are trade_math's
# open / increase / reduce / close and spot_buy / spot_sell).
REST = "limit_place"


@dataclass(slots=True)
class PlaceOrder:
    """One order of a chunk: a fill at ``price`` (a market order, or a resting
    mirror limit that executes now) or, with ``action == REST``, a new resting
    limit at ``price``."""

    account_id: int
    side: str
    action: str
    quantity: Decimal
    price: Decimal
    leverage: int = 1
    order_type: str = "market"
    subscription_id: int | None = None
    leader_event_id: int | None = None  # the event this order copies (None: a resting mirror's own fill)
    leader_order_id: int | None = None  # a mirror limit: the leader's order it mirrors
    leader_position_id: int | None = None  # an opened mirror: the leader's position it follows
    position: Any = None  # the mirror position this order changes (increase / reduce / close)
    holding: Any = None  # the spot holding this order changes
    reserve: Decimal = ZERO  # a new resting limit: the margin or asset it holds
    executes_order_id: int | None = None  # the resting mirror limit this fill executes
    release: Decimal = ZERO  # what that order's reservation gives back

    @property
    def client_order_id(self) -> str:
        """Deterministic per (leader event, subscription) — or, for the fill
        of a resting mirror limit (no event of its own), per that order: an
        external venue is sent it, and looked up by it after an ambiguous
        timeout, so two orders never share one."""
        if self.leader_event_id is None and self.executes_order_id is not None:
            return f"ct-o{self.executes_order_id}"
        return f"ct-{self.leader_event_id}-{self.subscription_id}"


@dataclass(slots=True)
class AmendOrder:
    """Move a resting order to ``price``; it then holds ``reserved``."""

    order_id: int
    account_id: int
    side: str
    price: Decimal
    reserved: Decimal
    reserved_before: Decimal
    holding: Any = None


@dataclass(slots=True)
class CancelOrder:
    """End a resting order without a (further) fill, as ``status``
    (CANCELLED, or REJECTED when it could not follow its leader)."""

    order_id: int
    account_id: int
    side: str
    price: Decimal
    release: Decimal
    status: str = CANCELLED
    holding: Any = None


@dataclass(slots=True, frozen=True)
class SetTpsl:
    position_id: int
    take_profit: Decimal | None
    stop_loss: Decimal | None


@dataclass(slots=True)
class OrderBatch:
    """Everything one chunk asks of one venue, for one instrument."""

    instrument: Any
    places: list[PlaceOrder] = field(default_factory=list)
    amends: list[AmendOrder] = field(default_factory=list)
    cancels: list[CancelOrder] = field(default_factory=list)
    tpsl: list[SetTpsl] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.places or self.amends or self.cancels or self.tpsl)


@dataclass(slots=True, frozen=True)
class OrderAck:
    """A venue's answer to one ``PlaceOrder``: the engine's order row and its
    status (FILLED or OPEN on the paper venue; PENDING on an external one)."""

    order_id: int
    status: str


@dataclass(slots=True, frozen=True)
class Balance:
    balance: Decimal
    locked: Decimal

    @property
    def free(self) -> Decimal:
        return self.balance - self.locked


@dataclass(slots=True, frozen=True)
class PositionSnapshot:
    position_id: int
    account_id: int
    instrument_id: int
    side: str
    quantity: Decimal
    entry_price: Decimal
    leverage: int
    margin: Decimal


@dataclass(slots=True, frozen=True)
class FillReport:
    order_id: int
    account_id: int
    instrument_id: int
    side: str
    quantity: Decimal
    price: Decimal
    filled_at: datetime


@runtime_checkable
class Venue(Protocol):
    name: str
    # True: ``execute`` fills market orders inside the caller's transaction
    # (the paper venue). False: it answers PENDING and fills come later.
    fills_synchronously: bool

    # --- the fan-out ------------------------------------------------------------
    def execute(self, batch: OrderBatch) -> list[OrderAck]:
        """Apply a chunk's orders in the caller's transaction; one ack per
        ``batch.places`` entry, in order. Amends, cancels and TP/SL apply
        before the places (a resting order ends before its replacement)."""
        ...

    # --- one account's orders ---------------------------------------------------
    def market_order(self, *, account_id: int, instrument, side: str, quantity: Decimal, leverage: int = 1) -> list:
        """A market order: the ``Executed`` steps it filled (a flip is two)."""
        ...

    def limit_order_place(
        self, *, account_id: int, instrument, side: str, quantity: Decimal, price: Decimal, leverage: int = 1
    ): ...

    def limit_order_amend(self, *, account_id: int, order_id: int, price: Decimal) -> tuple[Any, Decimal]:
        """Re-price a resting order; returns it and its old price."""
        ...

    def limit_order_cancel(self, *, account_id: int, order_id: int, mirror: bool = False): ...

    def position_close(self, *, account_id: int, position_id: int, quantity: Decimal | None = None):
        """Close all or part of a position: the ``Executed`` step."""
        ...

    def position_tpsl_set(self, *, account_id: int, position_id: int, take_profit, stop_loss): ...

    def position_leverage_set(self, *, account_id: int, position_id: int, leverage: int) -> tuple[Any, int]: ...

    # --- reads ------------------------------------------------------------------
    def balances(self, account_ids: list[int]) -> dict[int, Balance]: ...

    def positions(self, account_ids: list[int], *, instrument_id: int | None = None) -> list[PositionSnapshot]: ...

    def fills(self, account_ids: list[int], *, since: datetime) -> list[FillReport]: ...
