"""The paper venue's writer: applies a batch of fills set-based.

The same writer serves a leader's single order and a chunk of 500 mirrors, so
the arithmetic and the ledger movements exist once. The caller row-locks the
accounts, positions and holdings involved and has already checked that each
fill is affordable; this module only writes.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from copytrading import bulk, ledger, trade_math
from copytrading.models import (
    AccountKind,
    Holding,
    Instrument,
    Order,
    OrderStatus,
    OrderType,
    Position,
    PositionStatus,
    TransferKind,
)
from copytrading.money import ZERO

SPOT_BUY, SPOT_SELL = "spot_buy", "spot_sell"

POSITION_FIELDS = [
    "account", "instrument", "side", "quantity", "opened_quantity", "entry_price", "leverage", "margin",
    "status", "realized_pnl", "leader_position", "subscription_id", "opened_at",
]  # fmt: skip
POSITION_CHANGES = ["quantity", "opened_quantity", "entry_price", "margin", "status", "realized_pnl", "closed_at"]
ORDER_FIELDS = [
    "account", "instrument", "side", "order_type", "quantity", "price", "leverage", "status",
    "position", "leader_event", "subscription_id", "reserved", "leader_order", "created_at", "filled_at",
    "realized_pnl",
]  # fmt: skip
# A resting limit order that fills: its row is updated instead of a new one inserted.
RESTING_FILL_CHANGES = ["status", "position", "reserved", "filled_at", "realized_pnl"]


@dataclass(slots=True)
class NewPosition:
    """A position opened by a fill, without an ORM instance (the hot path opens
    thousands); it has the attributes of ``Position`` that callers read."""

    pk: int
    account_id: int
    side: str
    quantity: Decimal
    entry_price: Decimal
    leverage: int
    margin: Decimal

    @property
    def id(self) -> int:
        return self.pk


@dataclass(slots=True)
class PositionState:
    """An open position loaded for the hot path as plain values (no ORM instance)."""

    pk: int
    account_id: int
    side: str
    quantity: Decimal
    opened_quantity: Decimal
    entry_price: Decimal
    leverage: int
    margin: Decimal
    realized_pnl: Decimal
    status: str
    closed_at: object = None
    # Loaded by the price-driven matching only (see MATCH_FIELDS).
    leader_position_id: int | None = None
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    subscription_id: int | None = None

    FIELDS = (
        "pk", "account_id", "side", "quantity", "opened_quantity", "entry_price", "leverage", "margin",
        "realized_pnl", "status", "closed_at",
    )  # fmt: skip
    MATCH_FIELDS = (*FIELDS, "leader_position_id", "take_profit", "stop_loss", "subscription_id")

    @classmethod
    def opened(cls, new: "NewPosition", leader_position_id: int | None) -> "PositionState":
        """The state of a position a fill has just opened."""
        return cls(
            new.pk, new.account_id, new.side, new.quantity, new.quantity, new.entry_price, new.leverage,
            new.margin, ZERO, PositionStatus.OPEN, None, leader_position_id,
        )  # fmt: skip


@dataclass(slots=True, frozen=True)
class ClosedPosition:
    """A position that a batch of fills has just closed fully, as close
    listeners receive it."""

    position_id: int
    account_id: int
    realized_pnl: Decimal  # the position's whole realized PnL (the venue charges no trading fee)
    subscription_id: int | None  # set on mirrors; the listener maps accounts itself


@dataclass(slots=True, frozen=True)
class SpotSale:
    """A spot sell of the batch that realized a result in the primary
    currency (``Order.realized_pnl``: proceeds less the average cost of what
    was sold), as close listeners receive it. A cross-quote sell (ETH/BTC)
    realizes nothing in the primary currency and is not reported."""

    order_id: int
    account_id: int
    realized_pnl: Decimal
    subscription_id: int | None


CloseListener = Callable[[list[ClosedPosition], list[SpotSale]], None]
_close_listeners: list[CloseListener] = []


def register_close_listener(listener: CloseListener) -> None:
    """Have ``listener(closed, sold)`` called with every batch of fills
    ``apply_fills`` writes that closes positions or realizes spot sells (fees
    registers the profit-share accrual this way: the core imports no app above
    it). It runs in the same transaction, after the fills are written, once
    per batch; it must cost a constant number of queries and may move money
    only through the ledger. Registering twice is a no-op."""
    if listener not in _close_listeners:
        _close_listeners.append(listener)


def close_listeners() -> tuple[CloseListener, ...]:
    return tuple(_close_listeners)


@dataclass(slots=True, frozen=True)
class OrderRef:
    pk: int

    @property
    def id(self) -> int:
        return self.pk


@dataclass
class Fill:
    account_id: int
    instrument: Instrument
    order_side: str
    action: str  # open / increase / reduce / close / spot_buy / spot_sell
    quantity: Decimal
    price: Decimal
    leverage: int = 1
    position: Position | PositionState | NewPosition | None = (
        None  # existing (increase/reduce/close), or the one opened
    )
    holding: Holding | None = None  # the existing holding for spot (None: none yet)
    # A spot pair quoted in another asset than the primary currency (ETH/BTC)
    # settles against the holding of that quote asset, not the ledger.
    quote_holding: Holding | None = None
    leader_position_id: int | None = None
    subscription_id: int | None = None
    event_id: int | None = None
    order_type: str = OrderType.MARKET
    # The resting limit order this fill executes (its row becomes the filled
    # order), and the margin its reservation gives back to the free balance.
    resting_order_id: int | None = None
    reserved_release: Decimal = field(default=ZERO)
    # filled in by apply_fills
    order: OrderRef | None = None
    realized_pnl: Decimal = field(default=ZERO)
    realizes: bool = False  # the fill realized PnL in the primary currency (``Order.realized_pnl``)


def apply_fills(fills: list[Fill]) -> list[Fill]:
    """Write orders, positions, holdings and ledger transfers for ``fills``."""
    if not fills:
        return fills
    now = timezone.now()
    locked: dict[int, Decimal] = defaultdict(lambda: ZERO)
    settlements: list[tuple[Fill, Decimal, str]] = []  # (fill, signed amount to the account, kind)
    changed_positions: list[Position] = []
    opened: list[tuple[Fill, Decimal]] = []  # (fill, margin)
    new_holdings: dict[tuple[int, str], Holding] = {}
    changed_holdings: dict[int, Holding] = {}

    for f in fills:
        if f.instrument.reserved_asset(f.order_side) is None:  # else a holding's, released below
            locked[f.account_id] -= f.reserved_release
        if f.action == trade_math.OPEN:
            margin = trade_math.margin_for(f.quantity, f.price, f.leverage)
            opened.append((f, margin))
            locked[f.account_id] += margin
        elif f.action == trade_math.INCREASE:
            p = f.position
            margin = trade_math.margin_for(f.quantity, f.price, p.leverage)
            p.entry_price = trade_math.average_entry(p.quantity, p.entry_price, f.quantity, f.price)
            p.quantity += f.quantity
            p.opened_quantity += f.quantity
            p.margin += margin
            changed_positions.append(p)
            locked[f.account_id] += margin
        elif f.action in (trade_math.REDUCE, trade_math.CLOSE):
            p = f.position
            result = trade_math.close_part(
                side=p.side,
                quantity=p.quantity,
                closed=f.quantity,
                entry=p.entry_price,
                margin=p.margin,
                exit_price=f.price,
            )
            p.quantity -= f.quantity
            p.margin -= result.released_margin
            # What the wallet actually gained or lost: a loss beyond the
            # isolated margin (a gap through the liquidation level) is the venue's.
            p.realized_pnl += result.settled
            if p.quantity == 0:
                p.status = PositionStatus.CLOSED
                p.closed_at = now
            changed_positions.append(p)
            locked[f.account_id] -= result.released_margin
            f.realized_pnl, f.realizes = result.settled, True
            if result.settled:
                settlements.append((f, result.settled, TransferKind.REALIZED_PNL))
        elif f.action == SPOT_BUY:
            cost = trade_math.spot_cost(f.quantity, f.price)
            h = _holding(f.account_id, f.instrument.base, f.holding, new_holdings, changed_holdings)
            f.holding = h
            h.quantity += f.quantity
            if f.instrument.quote == settings.PRIMARY_CURRENCY:
                h.cost_basis += cost
                settlements.append((f, -cost, TransferKind.SPOT_TRADE))
            else:  # paid from the quote asset: its basis moves to the base
                paid = _holding(f.account_id, f.instrument.quote, f.quote_holding, new_holdings, changed_holdings)
                f.quote_holding = paid
                paid.reserved -= f.reserved_release
                h.cost_basis += _take(paid, cost)
        elif f.action == SPOT_SELL:
            h = f.holding
            changed_holdings[h.pk] = h
            h.reserved -= f.reserved_release
            proceeds = trade_math.spot_proceeds(f.quantity, f.price)
            basis = _take(h, f.quantity)
            if f.instrument.quote == settings.PRIMARY_CURRENCY:
                f.realized_pnl, f.realizes = proceeds - basis, True
                if proceeds:
                    settlements.append((f, proceeds, TransferKind.SPOT_TRADE))
            else:  # nothing is realized in the primary currency: the basis moves on
                got = _holding(f.account_id, f.instrument.quote, f.quote_holding, new_holdings, changed_holdings)
                f.quote_holding = got
                got.quantity += proceeds
                got.cost_basis += basis
        else:
            raise ValueError(f"unknown fill action {f.action!r}")

    # Updates before inserts: a flip closes the old position before the new
    # one takes its place under the "one open position" unique index.
    bulk.update_rows(
        Position, POSITION_CHANGES, [(p.pk, *(getattr(p, a) for a in POSITION_CHANGES)) for p in changed_positions]
    )
    new_orders = [f for f in fills if f.resting_order_id is None]
    # The ids of the new positions and orders in one round trip (PostgreSQL;
    # None on SQLite, which numbers the rows as it inserts them).
    position_ids, order_ids = bulk.reserve_ids([(Position, len(opened)), (Order, len(new_orders))]) or (None, None)
    _insert_positions(opened, now, position_ids)
    _write_holdings(changed_holdings, new_holdings)
    order_ids = bulk.insert_rows(
        Order,
        ORDER_FIELDS,
        [
            (
                f.account_id, f.instrument.pk, f.order_side, f.order_type, f.quantity, f.price, f.leverage,
                OrderStatus.FILLED, f.position.pk if f.action not in (SPOT_BUY, SPOT_SELL) else None,
                f.event_id, f.subscription_id, ZERO, None, now, now, f.realized_pnl if f.realizes else None,
            )
            for f in new_orders
        ],
        returning=True,
        ids=order_ids,
    )  # fmt: skip
    for f, pk in zip(new_orders, order_ids, strict=True):
        f.order = OrderRef(pk)
    # A flip fills one resting order in two steps: the order ends pointing at
    # the position it opened (the last step).
    resting: dict[int, tuple] = {}
    for f in fills:
        if f.resting_order_id is not None:
            f.order = OrderRef(f.resting_order_id)
            position_id = f.position.pk if f.position is not None else None  # None: a spot fill
            realized = f.realized_pnl if f.realizes else None
            if f.resting_order_id in resting and resting[f.resting_order_id][-1] is not None:  # a flip's close step
                realized = resting[f.resting_order_id][-1] + (realized or ZERO)
            resting[f.resting_order_id] = (f.resting_order_id, OrderStatus.FILLED, position_id, ZERO, now, realized)
    bulk.update_rows(Order, RESTING_FILL_CHANGES, list(resting.values()))

    specs = []
    # The venue's account only when something settles (an open settles
    # nothing: its margin is locked, not transferred).
    venue_id = ledger.system_account(AccountKind.VENUE).pk if settlements else None
    for f, amount, kind in settlements:
        key = f"order:{f.order.pk}:{kind.lower()}"
        ref = f"order {f.order.pk}"
        if amount > 0:
            specs.append(ledger.TransferSpec(venue_id, f.account_id, amount, kind, key, ref))
        else:
            specs.append(ledger.TransferSpec(f.account_id, venue_id, -amount, kind, key, ref))
    ledger.apply_transfers(specs, locked_deltas=dict(locked))
    _notify_closes(changed_positions, fills)
    return fills


def _notify_closes(changed_positions: list, fills: list[Fill]) -> None:
    """Tell the close listeners, once for the whole batch, which positions it
    closed (a position closed and reopened by a flip is a new row) and which
    spot sells realized a result."""
    if not _close_listeners:
        return
    subscription_of = {f.position.pk: f.subscription_id for f in fills if f.position is not None}
    seen: set[int] = set()
    closed = []
    for p in changed_positions:
        if p.status == PositionStatus.CLOSED and p.pk not in seen:
            seen.add(p.pk)
            subscription_id = subscription_of.get(p.pk) or getattr(p, "subscription_id", None)
            closed.append(ClosedPosition(p.pk, p.account_id, p.realized_pnl, subscription_id))
    sold = [
        SpotSale(f.order.pk, f.account_id, f.realized_pnl, f.subscription_id)
        for f in fills
        if f.action == SPOT_SELL and f.realizes
    ]
    if closed or sold:
        for listener in _close_listeners:
            listener(closed, sold)


def _holding(
    account_id: int, asset: str, known: Holding | None, new: dict[tuple[int, str], Holding], changed: dict[int, Holding]
) -> Holding:
    """The holding of ``asset`` this batch writes: the locked row, or one new row per (account, asset)."""
    if known is not None and known.pk:
        return changed.setdefault(known.pk, known)
    return new.setdefault((account_id, asset), known or Holding(account_id=account_id, asset=asset))


def _take(holding: Holding, quantity: Decimal) -> Decimal:
    """Remove ``quantity`` from ``holding`` and return the cost basis that leaves with it."""
    basis = trade_math.basis_taken(holding.quantity, holding.cost_basis, quantity)
    holding.quantity -= quantity
    holding.cost_basis -= basis
    return basis


def _insert_positions(opened: list[tuple[Fill, Decimal]], now, ids: list[int] | None) -> None:
    rows = [
        (
            f.account_id, f.instrument.pk, trade_math.side_of(f.order_side), f.quantity, f.quantity, f.price,
            f.leverage, margin, PositionStatus.OPEN, ZERO, f.leader_position_id, f.subscription_id, now,
        )
        for f, margin in opened
    ]  # fmt: skip
    ids = bulk.insert_rows(Position, POSITION_FIELDS, rows, returning=True, ids=ids)
    for (f, margin), pk in zip(opened, ids, strict=True):
        side = trade_math.side_of(f.order_side)
        f.position = NewPosition(pk, f.account_id, side, f.quantity, f.price, f.leverage, margin)


def _write_holdings(changed: dict[int, Holding], new: dict[tuple[int, str], Holding]) -> None:
    bulk.update_rows(
        Holding,
        ["quantity", "cost_basis", "reserved"],
        [(h.pk, h.quantity, h.cost_basis, h.reserved) for h in changed.values()],
    )
    fresh = list(new.values())
    rows = [(h.account_id, h.asset, h.quantity, h.cost_basis, h.reserved) for h in fresh]
    for h, pk in zip(
        fresh,
        bulk.insert_rows(Holding, ["account", "asset", "quantity", "cost_basis", "reserved"], rows, returning=True),
        strict=True,
    ):
        h.pk = h.id = pk
        h._state.adding = False
