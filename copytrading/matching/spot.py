"""The passes of a match on a spot instrument: leaders' own spot limits,
then the mirror limits that fill with them. A spot limit fills whole at its
limit price and its reservation pays for it (copytrading.reservations), so
a fill can fail only if an invariant is broken; such an order is ended
rather than traded."""

from decimal import Decimal

from django.conf import settings

from copytrading import trade_math
from copytrading.events import LimitFillOf, spot_step_event
from copytrading.matching.common import Resting
from copytrading.matching.passes import Matcher, account_rounds
from copytrading.models import OrderStatus, OrderType
from copytrading.money import ZERO, q8_up
from copytrading.venue import SPOT_BUY, SPOT_SELL, Fill, apply_fills


class SpotMatcher(Matcher):
    def _spot_fill(self, order: Resting) -> Fill | None:
        """The fill of a resting spot order at its price, or None if what it
        reserved no longer covers it."""
        instrument = self.instrument
        holding = self.holdings.get((order.account_id, instrument.base))
        cross = instrument.quote != settings.PRIMARY_CURRENCY
        paid_from = self.holdings.get((order.account_id, instrument.quote)) if cross else None
        if order.side == trade_math.SELL:
            if holding is None or holding.quantity < order.quantity:
                return None
            action = SPOT_SELL
        else:
            cost = q8_up(order.quantity * order.price)
            free = (paid_from.free if paid_from else ZERO) if cross else self._free(order.account_id)
            if cost > free + order.reserved:
                return None
            action = SPOT_BUY
        return Fill(
            order.account_id, instrument, order.side, action, order.quantity, order.price,
            holding=holding, quote_holding=paid_from, subscription_id=order.subscription_id,
            order_type=OrderType.LIMIT, resting_order_id=order.pk, reserved_release=order.reserved,
        )  # fmt: skip

    def _fill_batch(self, batch: list[Resting], ended_status: str) -> list[tuple[Resting, Fill, Decimal]]:
        """Fill one round of orders; returns (order, fill, base held before)."""
        filled: list[tuple[Resting, Fill, Decimal]] = []
        ended: list[tuple[Resting, str]] = []
        for order in batch:
            fill = self._spot_fill(order)
            if fill is None:
                ended.append((order, ended_status))
                continue
            filled.append((order, fill, fill.holding.quantity if fill.holding else ZERO))
        apply_fills([fill for _, fill, _ in filled])
        self._end_orders(ended)
        for order, fill, _ in filled:
            self.result.filled.append(order.pk)
            # A first buy created the holding: later rounds use its row.
            self.holdings[(order.account_id, self.instrument.base)] = fill.holding
            if fill.quote_holding is not None:
                self.holdings[(order.account_id, self.instrument.quote)] = fill.quote_holding
        for order, status in ended:
            if ended_status == OrderStatus.REJECTED and order.leader_order_id is None:
                self._record_rejection(order, status)
        return filled

    def fill_own_spot_orders(self, orders: list[Resting]) -> set[int]:
        """Leaders' own spot limits; each fill commits its leader event."""
        filled: set[int] = set()
        for batch in account_rounds(orders):
            done = self._fill_batch(batch, OrderStatus.REJECTED)
            for order, fill, before in done:
                filled.add(order.pk)
                portfolio_id = self.portfolios.get(order.account_id)
                if portfolio_id is None:
                    continue
                self.result.events.append(
                    spot_step_event(
                        portfolio_id=portfolio_id,
                        fill=fill,
                        quantity_before=before,
                        equity=self.balances[order.account_id][0],
                        trigger="limit",
                        limit=LimitFillOf(order.pk, order.quantity, final=True),
                    )
                )
            self._refresh({o.account_id for o in batch})
        return filled

    def fill_spot_mirrors(self, orders: list[Resting]) -> None:
        """Mirror limits whose leader order filled in this match."""
        for batch in account_rounds(orders):
            self._fill_batch(batch, OrderStatus.CANCELLED)
            self._refresh({o.account_id for o in batch})
