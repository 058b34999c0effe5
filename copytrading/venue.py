"""The paper venue's writer: applies a batch of fills set-based.

The same writer serves a leader's single order and a chunk of 500 mirrors, so
the arithmetic and the ledger movements exist once. The caller row-locks the
accounts, positions and holdings involved and has already checked that each
fill is affordable; this module only writes.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from copytrading import ledger, trade_math
from copytrading.models import (
    AccountKind,
    Holding,
    Instrument,
    Order,
    Position,
    PositionStatus,
    TransferKind,
)
from copytrading.money import ZERO, q8_down, q8_up

SPOT_BUY, SPOT_SELL = "spot_buy", "spot_sell"


@dataclass
class Fill:
    account_id: int
    instrument: Instrument
    order_side: str
    action: str  # open / increase / reduce / close / spot_buy / spot_sell
    quantity: Decimal
    price: Decimal
    leverage: int = 1
    position: Position | None = None  # the existing position for increase/reduce/close
    holding: Holding | None = None  # the existing holding for spot (None: none yet)
    leader_position_id: int | None = None
    subscription_id: int | None = None
    event_id: int | None = None
    # filled in by apply_fills
    order: Order | None = None
    realized_pnl: Decimal = field(default=ZERO)


def apply_fills(fills: list[Fill]) -> list[Fill]:
    """Write orders, positions, holdings and ledger transfers for ``fills``."""
    if not fills:
        return fills
    now = timezone.now()
    venue_id = ledger.system_account(AccountKind.VENUE).pk
    locked: dict[int, Decimal] = defaultdict(lambda: ZERO)
    settlements: list[tuple[Fill, Decimal, str]] = []  # (fill, signed amount to the account, kind)
    changed_positions: list[Position] = []
    new_positions: list[Position] = []
    new_holdings: dict[tuple[int, str], Holding] = {}
    changed_holdings: dict[int, Holding] = {}

    for f in fills:
        if f.action == trade_math.OPEN:
            margin = trade_math.margin_for(f.quantity, f.price, f.leverage)
            f.position = Position(
                account_id=f.account_id,
                instrument=f.instrument,
                side=trade_math.side_of(f.order_side),
                quantity=f.quantity,
                opened_quantity=f.quantity,
                entry_price=f.price,
                leverage=f.leverage,
                margin=margin,
                leader_position_id=f.leader_position_id,
                subscription_id=f.subscription_id,
            )
            new_positions.append(f.position)
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
            p.realized_pnl += result.pnl
            if p.quantity == 0:
                p.status = PositionStatus.CLOSED
                p.closed_at = now
            changed_positions.append(p)
            locked[f.account_id] -= result.released_margin
            f.realized_pnl = result.pnl
            if result.settled:
                settlements.append((f, result.settled, TransferKind.REALIZED_PNL))
        elif f.action == SPOT_BUY:
            cost = q8_up(f.quantity * f.price)
            h = f.holding or new_holdings.get((f.account_id, f.instrument.base))
            if h is None:
                h = Holding(account_id=f.account_id, asset=f.instrument.base)
                new_holdings[(f.account_id, f.instrument.base)] = h
            elif h.pk:
                changed_holdings[h.pk] = h
            h.quantity += f.quantity
            h.cost_basis += cost
            f.holding = h
            settlements.append((f, -cost, TransferKind.SPOT_TRADE))
        elif f.action == SPOT_SELL:
            h = f.holding
            proceeds = q8_down(f.quantity * f.price)
            basis = h.cost_basis if f.quantity == h.quantity else q8_down(h.cost_basis * f.quantity / h.quantity)
            f.realized_pnl = proceeds - basis
            h.quantity -= f.quantity
            h.cost_basis -= basis
            changed_holdings[h.pk] = h
            if proceeds:
                settlements.append((f, proceeds, TransferKind.SPOT_TRADE))
        else:
            raise ValueError(f"unknown fill action {f.action!r}")

    # Updates before inserts: a flip closes the old position before the new
    # one takes its place under the "one open position" unique index.
    if changed_positions:
        Position.objects.bulk_update(
            changed_positions,
            ["quantity", "opened_quantity", "entry_price", "margin", "status", "realized_pnl", "closed_at"],
            batch_size=1000,
        )
    if new_positions:
        Position.objects.bulk_create(new_positions, batch_size=1000)
    if changed_holdings:
        Holding.objects.bulk_update(list(changed_holdings.values()), ["quantity", "cost_basis"], batch_size=1000)
    if new_holdings:
        Holding.objects.bulk_create(list(new_holdings.values()), batch_size=1000)

    orders = [
        Order(
            account_id=f.account_id,
            instrument=f.instrument,
            side=f.order_side,
            quantity=f.quantity,
            price=f.price,
            leverage=f.leverage,
            position=f.position if f.action not in (SPOT_BUY, SPOT_SELL) else None,
            leader_event_id=f.event_id,
            subscription_id=f.subscription_id,
        )
        for f in fills
    ]
    Order.objects.bulk_create(orders, batch_size=1000)
    for f, order in zip(fills, orders, strict=True):
        f.order = order

    specs = []
    for f, amount, kind in settlements:
        key = f"order:{f.order.pk}:{kind.lower()}"
        if amount > 0:
            specs.append(ledger.TransferSpec(venue_id, f.account_id, amount, kind, key, ref=f"order {f.order.pk}"))
        else:
            specs.append(ledger.TransferSpec(f.account_id, venue_id, -amount, kind, key, ref=f"order {f.order.pk}"))
    ledger.apply_transfers(specs, locked_deltas=dict(locked))
    return fills
