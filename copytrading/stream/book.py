"""The positions and spot holdings a stream shows, kept in memory and valued
at the marks on every tick (copytrading.valuation's formula): no database
read per tick. Pure: no Django."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from copytrading.money import q8
from copytrading.valuation import holding_value, position_unrealized, position_value

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PositionRow:
    id: int
    account_id: int
    instrument_id: int
    symbol: str
    side: str
    quantity: Decimal
    entry_price: Decimal
    leverage: int
    margin: Decimal


@dataclass(frozen=True, slots=True)
class HoldingRow:
    account_id: int
    asset: str
    quantity: Decimal
    cost_basis: Decimal
    pair_id: int | None  # the priced primary-currency pair that values it, if any


@dataclass(frozen=True, slots=True)
class AccountFigures:
    used_margin: Decimal
    margin_unrealized: Decimal  # exact, each loss capped at its margin
    holdings_value: Decimal  # at the mark, at cost without one
    spot_unrealized: Decimal  # 0 for a holding without a mark

    def equity(self, balance: Decimal) -> Decimal:
        """The account's equity at the marks: its cash, open positions' PnL,
        holdings at their value (8 dp)."""
        return q8(balance + self.margin_unrealized + self.holdings_value)

    @property
    def unrealized_pnl(self) -> Decimal:
        return q8(self.margin_unrealized + self.spot_unrealized)


@dataclass(slots=True)
class Book:
    positions: list[PositionRow] = field(default_factory=list)
    holdings: list[HoldingRow] = field(default_factory=list)

    def instruments(self) -> set[int]:
        return {p.instrument_id for p in self.positions} | {h.pair_id for h in self.holdings if h.pair_id is not None}

    def figures(self, account_ids: Iterable[int], marks: Mapping[int, Decimal]) -> dict[int, AccountFigures]:
        """Each account's sums at ``marks`` (an account with nothing open: zeros)."""
        sums = {pk: [ZERO, ZERO, ZERO, ZERO] for pk in account_ids}
        for p in self.positions:
            s = sums.get(p.account_id)
            if s is None:
                continue
            s[0] += p.margin
            mark = marks.get(p.instrument_id)
            if mark is not None:
                s[1] += position_unrealized(p.side, p.quantity, p.entry_price, mark, p.margin)
        for h in self.holdings:
            s = sums.get(h.account_id)
            if s is None:
                continue
            mark = marks.get(h.pair_id) if h.pair_id is not None else None
            if mark is None:
                s[2] += h.cost_basis
            else:
                value = h.quantity * mark
                s[2] += value
                s[3] += value - h.cost_basis
        return {pk: AccountFigures(*s) for pk, s in sums.items()}

    def position_views(self, marks: Mapping[int, Decimal]) -> dict[str, dict]:
        views = {}
        for p in self.positions:
            v = position_value(
                side=p.side,
                quantity=p.quantity,
                entry_price=p.entry_price,
                margin=p.margin,
                mark=marks.get(p.instrument_id),
            )
            views[f"position:{p.id}"] = {
                "kind": "position",
                "id": p.id,
                "account_id": p.account_id,
                "instrument": p.symbol,
                "side": p.side,
                "quantity": p.quantity,
                "entry_price": p.entry_price,
                "leverage": p.leverage,
                "margin": p.margin,
                "mark_price": v.mark_price,
                "unrealized_pnl": v.unrealized_pnl,
                "notional": v.notional,
                "margin_level_pct": v.margin_level_pct,
            }
        return views

    def holding_views(self, marks: Mapping[int, Decimal]) -> dict[str, dict]:
        views = {}
        for h in self.holdings:
            v = holding_value(
                quantity=h.quantity,
                cost_basis=h.cost_basis,
                mark=marks.get(h.pair_id) if h.pair_id is not None else None,
            )
            views[f"holding:{h.account_id}:{h.asset}"] = {
                "kind": "holding",
                "account_id": h.account_id,
                "asset": h.asset,
                "quantity": h.quantity,
                "cost_basis": h.cost_basis,
                "mark_price": v.mark_price,
                "value": v.value,
                "unrealized_pnl": v.unrealized_pnl,
            }
        return views
