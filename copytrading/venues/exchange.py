"""The exchange venue behind the port: a copy wallet bound to a linked
exchange account (``Account.exchange_account``) trades there.

Nothing is applied before the exchange confirms it. A chunk's fills become,
set-based (one statement per table whatever the chunk's size):
- an engine ``Order`` with status PENDING, holding what it will pay with
  (margin for an open or increase, the quote for a spot buy, the base for a
  spot sell: ``copytrading.reservations.hold``, the resting-order path), so
  the next decision already sees the free balance reduced;
- an ``ExchangeOrder`` (the outbound record: deterministic client order id,
  the ccxt symbol, the quantity in the exchange's unit, reduce-only for
  reduces and closes), sent after commit by the submitter
  (``exchange.submit``, copytrading/exchanges/submitter.py).
The chunk's acknowledgement is ``PENDING``. What the exchange then says comes
back through ``copytrading.exchanges.outcomes.record_outcomes``, whose
engine applier (``copytrading.venues.exchange_fills``) applies fills through
the paper engine's fill code and rejections as REJECTED executions.

Mirror limit orders are not placed on exchange-bound copies (the decision
skips them: ``MIRROR_LIMIT_NOT_ON_EXCHANGE``; a leader's limit that fills
reaches them as a market copy). TP/SL stay service-side, on the mirror
position; a trigger closes through ``position_close`` below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from copytrading import bulk, ledger, reservations, trade_math
from copytrading.errors import DomainError
from copytrading.exchanges.models import ExchangeOrder, ExchangeOrderStatus
from copytrading.exchanges.submitter import submit_after_commit
from copytrading.models import Account, Holding, Instrument, Order, OrderStatus, OrderType, Product
from copytrading.money import ZERO, q8_up
from copytrading.trading import Executed
from copytrading.trading.common import closing_quantity, lock_own_open_position
from copytrading.venue import SPOT_BUY, SPOT_SELL, Fill, OrderRef
from copytrading.venues.paper import PaperVenue
from copytrading.venues.port import (
    PENDING,
    REST,
    Balance,
    FillReport,
    OrderAck,
    OrderBatch,
    PlaceOrder,
    PositionSnapshot,
)

NAME = "exchange"
REDUCING = (trade_math.REDUCE, trade_math.CLOSE)

PENDING_ORDER_FIELDS = [
    "account", "instrument", "side", "order_type", "quantity", "price", "leverage", "status", "position",
    "leader_event", "subscription_id", "reserved", "created_at",
]  # fmt: skip
EXCHANGE_ORDER_FIELDS = [
    "exchange_account", "order", "client_order_id", "symbol", "side", "order_type", "quantity", "reduce_only",
    "status", "attempts", "exchange_order_id", "filled_quantity", "applied_quantity", "applied_cost",
    "reject_code", "reject_message", "leader_event_id", "subscription_id", "decided_at", "updated_at",
]  # fmt: skip


def ccxt_symbol(instrument: Instrument) -> str:
    """The ccxt (unified) symbol of an instrument: synced instruments are
    named by it (copytrading/exchanges/instruments.py)."""
    return instrument.symbol


def exchange_quantity(instrument: Instrument, quantity: Decimal) -> Decimal:
    """Our base quantity in the exchange's amount unit (contracts for a
    contract market). Our steps are the exchange's times the contract size,
    so the division is exact."""
    if instrument.product == Product.SPOT:
        return quantity
    return (quantity / instrument.contract_size).normalize()


def reserve_for(instrument: Instrument, action: str, quantity: Decimal, price: Decimal, leverage: int) -> Decimal:
    """What a pending order holds until its fill is applied, in the asset it
    pays with (copytrading.reservations): margin for an open or increase at
    the decided price, the cost for a spot buy, the base for a spot sell;
    nothing for a reduce or close (the position's margin is held already)."""
    if action in (trade_math.OPEN, trade_math.INCREASE):
        return trade_math.margin_for(quantity, price, leverage)
    if action == SPOT_BUY:
        return q8_up(quantity * price)
    if action == SPOT_SELL:
        return quantity
    return ZERO


@dataclass(slots=True)
class Pending:
    """One order to write as pending: from a chunk's ``PlaceOrder`` or a
    one-account close. ``client_order_id`` None: ``ct-c<order id>``."""

    account_id: int
    side: str
    action: str
    quantity: Decimal
    price: Decimal
    leverage: int
    position_id: int | None
    holding: Holding | None
    subscription_id: int | None
    leader_event_id: int | None
    client_order_id: str | None


def write_pending(instrument: Instrument, orders: Sequence[Pending]) -> tuple[list[int], list[int]]:
    """Write the engine orders (PENDING, with their reservations) and their
    exchange orders, set-based; queue their sending after commit. The
    caller holds the accounts' (and positions', holdings') row locks.
    Returns (engine order ids, exchange order ids), in order."""
    if not orders:
        return [], []
    now = timezone.now()
    bound = dict(
        Account.objects.filter(pk__in=sorted({o.account_id for o in orders})).values_list("pk", "exchange_account_id")
    )
    unbound = sorted({o.account_id for o in orders if bound.get(o.account_id) is None})
    if unbound:
        raise ValueError(f"accounts {unbound} are not bound to an exchange account")
    reserved = [reserve_for(instrument, o.action, o.quantity, o.price, o.leverage) for o in orders]
    holdings = {(o.account_id, instrument.base): o.holding for o in orders if o.holding is not None}
    reservations.hold(
        [(o.account_id, instrument, o.side, r) for o, r in zip(orders, reserved, strict=True)], holdings=holdings
    )
    order_ids = bulk.insert_rows(
        Order,
        PENDING_ORDER_FIELDS,
        [
            (
                o.account_id, instrument.pk, o.side, OrderType.MARKET, o.quantity, o.price, o.leverage,
                OrderStatus.PENDING, o.position_id, o.leader_event_id, o.subscription_id, r, now,
            )
            for o, r in zip(orders, reserved, strict=True)
        ],
        returning=True,
    )  # fmt: skip
    symbol = ccxt_symbol(instrument)
    exchange_ids = bulk.insert_rows(
        ExchangeOrder,
        EXCHANGE_ORDER_FIELDS,
        [
            (
                bound[o.account_id], pk, o.client_order_id or f"ct-c{pk}", symbol, o.side, "market",
                exchange_quantity(instrument, o.quantity), o.action in REDUCING, ExchangeOrderStatus.PENDING, 0,
                "", ZERO, ZERO, ZERO, "", "", o.leader_event_id, o.subscription_id, now, now,
            )
            for o, pk in zip(orders, order_ids, strict=True)
        ],
        returning=True,
    )  # fmt: skip
    submit_after_commit(exchange_ids)
    return order_ids, exchange_ids


def positions_closing(position_ids: Sequence[int]) -> dict[int, int]:
    """The positions among these with a reduce-only order pending at the
    exchange: position id -> that order's id (one query)."""
    if not position_ids:
        return {}
    rows = (
        Order.objects.filter(
            position_id__in=list(position_ids), status=OrderStatus.PENDING, exchange_order__reduce_only=True
        )
        .order_by("-pk")
        .values_list("position_id", "pk")
    )
    return dict(rows)


# After the exchange refused a close (a revoked key, nothing left to reduce),
# no new close of that position or wallet is sent before this has passed: a
# trigger seen on every price tick, or an unfollow re-run as each refusal
# settles, would otherwise send one refused order after another.
REFUSED_CLOSE_COOLDOWN = timedelta(seconds=60)


def closes_refused_recently(*, position_ids: Sequence[int] = (), account_ids: Sequence[int] = ()) -> set[int]:
    """Of these positions (or wallets), those whose reduce-only order the
    exchange refused or the service gave up within the cool-down (one query)."""
    if not position_ids and not account_ids:
        return set()
    since = timezone.now() - REFUSED_CLOSE_COOLDOWN
    refused = Order.objects.filter(
        status=OrderStatus.REJECTED, exchange_order__reduce_only=True, exchange_order__updated_at__gte=since
    )
    if position_ids:
        return set(refused.filter(position_id__in=list(position_ids)).values_list("position_id", flat=True))
    return set(refused.filter(account_id__in=list(account_ids)).values_list("account_id", flat=True))


class ExchangeVenue:
    name = NAME
    fills_synchronously = False

    def __init__(self) -> None:
        # What stays service-side (TP/SL, reads of the mirror) is the paper
        # venue's bookkeeping.
        self._paper = PaperVenue()

    # --- the fan-out ------------------------------------------------------------

    def execute(self, batch: OrderBatch) -> list[OrderAck]:
        """A chunk's orders for exchange-bound copies: fills become pending
        orders (one statement per table); TP/SL (and any amend or cancel of a
        service-side resting order) are written as the paper venue does."""
        if any(p.action == REST for p in batch.places):
            raise ValueError("mirror limit orders are not placed on exchange-bound copies")
        if batch.amends or batch.cancels or batch.tpsl:
            self._paper.execute(
                OrderBatch(batch.instrument, amends=batch.amends, cancels=batch.cancels, tpsl=batch.tpsl)
            )
        if not batch.places:
            return []
        if any(p.executes_order_id is not None for p in batch.places):
            raise ValueError("an exchange-bound copy has no resting mirror limit to execute")
        order_ids, _ = write_pending(batch.instrument, [_pending(p) for p in batch.places])
        return [OrderAck(pk, PENDING) for pk in order_ids]

    # --- one account's orders ---------------------------------------------------

    def market_order(self, *, account_id: int, instrument, side: str, quantity: Decimal, leverage: int = 1) -> list:
        raise _not_here("market orders")

    def limit_order_place(
        self, *, account_id: int, instrument, side: str, quantity: Decimal, price: Decimal, leverage: int = 1
    ):
        raise _not_here("limit orders")

    def limit_order_amend(self, *, account_id: int, order_id: int, price: Decimal):
        return self._paper.limit_order_amend(account_id=account_id, order_id=order_id, price=price)

    def limit_order_cancel(self, *, account_id: int, order_id: int, mirror: bool = False):
        return self._paper.limit_order_cancel(account_id=account_id, order_id=order_id, mirror=mirror)

    @transaction.atomic
    def position_close(self, *, account_id: int, position_id: int, quantity: Decimal | None = None) -> Executed:
        """Close all or ``quantity`` of a mirror on the exchange: a pending
        reduce-only order (``ct-c<order id>``), sent after commit; the mirror
        closes when its fill is applied. While a close of the position is
        pending, asking again returns it (a retried close, the reconciler's
        second pass) instead of sending another. The returned step's fill is
        the pending order (``fill.order``), not yet applied."""
        position = lock_own_open_position(position_id, account_id)
        instrument = position.instrument
        ledger.lock_accounts([account_id])
        side = trade_math.closing_side(position.side)
        # No mark yet (an instrument just synced): the entry price; the close
        # reserves nothing and fills at the exchange's price anyway.
        mark = instrument.mark_price or position.entry_price
        price = trade_math.fill_price(mark, side, settings.PAPER_SPREAD_BPS, instrument.price_tick)
        closed, action = closing_quantity(position, quantity)
        fill = Fill(
            account_id, instrument, side, action, closed, price, position.leverage, position,
            subscription_id=position.subscription_id,
        )  # fmt: skip
        already = positions_closing([position_id]).get(position_id)
        if already is not None:
            fill.order = OrderRef(already)
            return Executed(action, fill, position.quantity)
        (order_id,), _ = write_pending(
            instrument,
            [
                Pending(
                    account_id, side, action, closed, price, position.leverage, position_id, None,
                    position.subscription_id, None, None,
                )
            ],
        )  # fmt: skip
        fill.order = OrderRef(order_id)
        return Executed(action, fill, position.quantity)

    def position_tpsl_set(self, *, account_id: int, position_id: int, take_profit, stop_loss):
        return self._paper.position_tpsl_set(
            account_id=account_id, position_id=position_id, take_profit=take_profit, stop_loss=stop_loss
        )

    def position_leverage_set(self, *, account_id: int, position_id: int, leverage: int):
        raise _not_here("leverage changes")

    # --- reads: the service's mirror of the account -----------------------------

    def balances(self, account_ids: list[int]) -> dict[int, Balance]:
        return self._paper.balances(account_ids)

    def positions(self, account_ids: list[int], *, instrument_id: int | None = None) -> list[PositionSnapshot]:
        return self._paper.positions(account_ids, instrument_id=instrument_id)

    def fills(self, account_ids: list[int], *, since: datetime) -> list[FillReport]:
        return self._paper.fills(account_ids, since=since)


def _pending(p: PlaceOrder) -> Pending:
    return Pending(
        account_id=p.account_id,
        side=p.side,
        action=p.action,
        quantity=p.quantity,
        price=p.price,
        leverage=p.leverage,
        position_id=p.position.pk if p.position is not None else None,
        holding=p.holding,
        subscription_id=p.subscription_id,
        leader_event_id=p.leader_event_id,
        client_order_id=p.client_order_id,
    )


def _not_here(what: str) -> DomainError:
    return DomainError(
        "NOT_SUPPORTED_ON_EXCHANGE",
        f"{what.capitalize()} are not placed by hand on an account bound to an exchange.",
        status=409,
    )
