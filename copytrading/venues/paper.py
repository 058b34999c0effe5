"""The paper venue behind the port: an internal exchange over the ledger.

Fills are synchronous: a chunk's market orders and executing mirror limits
are written by ``copytrading.venue.apply_fills`` inside the chunk's
transaction; resting limits rest in the ``Order`` table with their margin (or
asset) reserved (copytrading.reservations), and fill later through the
price-driven matching (copytrading.matching), which is this venue's own
engine. One account's orders are ``copytrading.trading``'s services.
"""

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from copytrading import bulk, ledger, trading
from copytrading.models import Account, Holding, Order, OrderStatus, OrderType, Position, PositionStatus, Product
from copytrading.money import ZERO
from copytrading.venue import Fill, apply_fills
from copytrading.venues.port import (
    FILLED,
    OPEN,
    REST,
    Balance,
    FillReport,
    OrderAck,
    OrderBatch,
    PositionSnapshot,
)

RESTING_ORDER_FIELDS = [
    "account", "instrument", "side", "order_type", "quantity", "price", "leverage", "status", "position",
    "leader_event", "subscription_id", "reserved", "leader_order", "created_at",
]  # fmt: skip


class PaperVenue:
    name = "paper"
    fills_synchronously = True

    # --- the fan-out ------------------------------------------------------------

    def execute(self, batch: OrderBatch) -> list[OrderAck]:
        """One chunk's orders, set-based: one statement per table whatever
        the chunk's size."""
        instrument = batch.instrument
        locked: dict[int, Decimal] = defaultdict(lambda: ZERO)  # account -> reserved delta
        holdings: dict[int, Holding] = {}  # holdings whose reserved part changed (spot sells)

        def reserve(side: str, account_id: int, holding: Holding | None, amount: Decimal) -> None:
            # Margin and quote reservations live in the ledger; a spot sell
            # holds the asset it sells, in its holding.
            if instrument.reserved_asset(side) is not None:
                holding.reserved += amount
                holdings[holding.pk] = holding
            else:
                locked[account_id] += amount

        resting = [p for p in batch.places if p.action == REST]
        fills = [p for p in batch.places if p.action != REST] if resting else batch.places
        for p in resting:
            reserve(p.side, p.account_id, p.holding, p.reserve)
        changes = []
        for a in batch.amends:
            reserve(a.side, a.account_id, a.holding, a.reserved - a.reserved_before)
            changes.append((a.order_id, a.price, a.reserved, OrderStatus.OPEN))
        for c in batch.cancels:
            reserve(c.side, c.account_id, c.holding, -c.release)
            changes.append((c.order_id, c.price, ZERO, c.status))

        ledger.apply_transfers([], locked_deltas={k: v for k, v in locked.items() if v})
        # Before the fills: apply_fills writes the holdings it touches whole.
        bulk.update_rows(Holding, ["reserved"], [(h.pk, h.reserved) for h in holdings.values()])
        bulk.update_rows(Order, ["price", "reserved", "status"], changes)
        bulk.update_rows(
            Position, ["take_profit", "stop_loss"], [(t.position_id, t.take_profit, t.stop_loss) for t in batch.tpsl]
        )

        acks: dict[int, OrderAck] = {}  # id(place) -> ack, when some rest and some fill
        if resting:
            now = timezone.now()
            rows = [
                (
                    p.account_id, instrument.pk, p.side, OrderType.LIMIT, p.quantity, p.price, p.leverage,
                    OrderStatus.OPEN, None, p.leader_event_id, p.subscription_id, p.reserve, p.leader_order_id, now,
                )
                for p in resting
            ]  # fmt: skip
            for p, pk in zip(resting, bulk.insert_rows(Order, RESTING_ORDER_FIELDS, rows, returning=True), strict=True):
                acks[id(p)] = OrderAck(pk, OPEN)
        written = apply_fills(
            [
                Fill(
                    account_id=p.account_id,
                    instrument=instrument,
                    order_side=p.side,
                    action=p.action,
                    quantity=p.quantity,
                    price=p.price,
                    leverage=p.leverage,
                    position=p.position,
                    holding=p.holding,
                    leader_position_id=p.leader_position_id,
                    subscription_id=p.subscription_id,
                    event_id=p.leader_event_id,
                    order_type=p.order_type,
                    resting_order_id=p.executes_order_id,
                    reserved_release=p.release,
                )
                for p in fills
            ]
        )
        if not resting:
            return [OrderAck(f.order.pk, FILLED) for f in written]
        for p, f in zip(fills, written, strict=True):
            acks[id(p)] = OrderAck(f.order.pk, FILLED)
        return [acks[id(p)] for p in batch.places]

    # --- one account's orders ---------------------------------------------------

    def market_order(self, *, account_id: int, instrument, side: str, quantity: Decimal, leverage: int = 1) -> list:
        if instrument.product == Product.SPOT:
            return [
                trading.spot_market_order(account_id=account_id, instrument=instrument, side=side, quantity=quantity)
            ]
        return trading.margin_market_order(
            account_id=account_id, instrument=instrument, side=side, quantity=quantity, leverage=leverage
        )

    def limit_order_place(
        self, *, account_id: int, instrument, side: str, quantity: Decimal, price: Decimal, leverage: int = 1
    ) -> Order:
        return trading.limit_order_place(
            account_id=account_id, instrument=instrument, side=side, quantity=quantity, price=price, leverage=leverage
        )

    def limit_order_amend(self, *, account_id: int, order_id: int, price: Decimal) -> tuple[Order, Decimal]:
        return trading.limit_order_reprice(order_id=order_id, account_id=account_id, price=price)

    def limit_order_cancel(self, *, account_id: int, order_id: int, mirror: bool = False) -> Order:
        return trading.limit_order_cancel(order_id=order_id, account_id=account_id, mirror=mirror)

    def position_close(self, *, account_id: int, position_id: int, quantity: Decimal | None = None):
        return trading.position_close(position_id=position_id, account_id=account_id, quantity=quantity)

    def position_tpsl_set(self, *, account_id: int, position_id: int, take_profit, stop_loss) -> Position:
        return trading.position_tpsl_set(
            position_id=position_id, account_id=account_id, take_profit=take_profit, stop_loss=stop_loss
        )

    def position_leverage_set(self, *, account_id: int, position_id: int, leverage: int) -> tuple[Position, int]:
        return trading.position_leverage_set(position_id=position_id, account_id=account_id, leverage=leverage)

    # --- reads ------------------------------------------------------------------

    def balances(self, account_ids: list[int]) -> dict[int, Balance]:
        rows = Account.objects.filter(pk__in=account_ids).values_list("pk", "balance", "locked")
        return {pk: Balance(balance, locked) for pk, balance, locked in rows}

    def positions(self, account_ids: list[int], *, instrument_id: int | None = None) -> list[PositionSnapshot]:
        rows = Position.objects.filter(account_id__in=account_ids, status=PositionStatus.OPEN)
        if instrument_id is not None:
            rows = rows.filter(instrument_id=instrument_id)
        return [
            PositionSnapshot(*row)
            for row in rows.order_by("pk").values_list(
                "pk", "account_id", "instrument_id", "side", "quantity", "entry_price", "leverage", "margin"
            )
        ]

    def fills(self, account_ids: list[int], *, since: datetime) -> list[FillReport]:
        rows = Order.objects.filter(account_id__in=account_ids, status=OrderStatus.FILLED, filled_at__gte=since)
        return [
            FillReport(*row)
            for row in rows.order_by("filled_at", "pk").values_list(
                "pk", "account_id", "instrument_id", "side", "quantity", "price", "filled_at"
            )
        ]
