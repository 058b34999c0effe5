"""The leader-event contract: the kinds, declared once, and one frozen
dataclass per kind with ``to_payload``/``from_payload``. Pure: no Django.

A ``LeaderEvent`` row stores ``kind`` and ``payload`` (JSON); producers build
the dataclass of their kind (``copytrading.events`` has the constructors for
venue steps) and the outbox stores ``to_payload()``; the hot path reads
``parse(kind, payload)`` once per chunk and then only typed fields.

Payload rules, so that every row ever written still parses:
- Decimals are strings (``str(Decimal)``: the stored text is kept exactly),
  integers are integers, flags are booleans.
- A field without a default is required (its key must be present; a field
  typed ``X | None`` may hold null). A field with a default of None is
  optional: absent on read gives None, None on write leaves the key out.
  Fields that older events lack are optional for that reason (reduces and
  sells carried only ``fraction`` before ``quantity``/``quantity_before``
  existed; closes carried neither).
- Keys no field names are ignored on read (a reader never trips on what a
  newer writer added) and never written.
A payload that breaks the rules raises ``EventPayloadError`` naming the
kind and the field: the event is broken, not a follower.
"""

import typing
from dataclasses import MISSING, dataclass, fields
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import NoneType, UnionType
from typing import Any, ClassVar, Self


class Kind(StrEnum):
    """Every kind of leader event (``LeaderEvent.kind``; the model's choices
    are derived from this, with LABELS)."""

    POSITION_OPEN = "position_open"
    POSITION_REDUCE = "position_reduce"
    POSITION_CLOSE = "position_close"
    SPOT_BUY = "spot_buy"
    SPOT_SELL = "spot_sell"
    LIMIT_PLACED = "limit_placed"
    LIMIT_REPRICED = "limit_repriced"
    LIMIT_CANCELLED = "limit_cancelled"
    TPSL_SET = "tpsl_set"
    POSITION_EDIT = "position_edit"
    ORDER_NOT_COPIED = "order_not_copied"  # a leader order of a type that is never copied


LABELS: dict[Kind, str] = {
    Kind.POSITION_OPEN: "Position opened or increased",
    Kind.POSITION_REDUCE: "Position partially closed",
    Kind.POSITION_CLOSE: "Position closed",
    Kind.SPOT_BUY: "Spot buy",
    Kind.SPOT_SELL: "Spot sell",
    Kind.LIMIT_PLACED: "Limit order placed",
    Kind.LIMIT_REPRICED: "Limit order re-priced",
    Kind.LIMIT_CANCELLED: "Limit order cancelled",
    Kind.TPSL_SET: "TP/SL set or cleared",
    Kind.POSITION_EDIT: "Position edited (not propagated)",
    Kind.ORDER_NOT_COPIED: "Leader order not copyable",
}


class EventPayloadError(ValueError):
    """A stored or produced payload that does not match its kind's contract."""

    def __init__(self, kind: str, field: str | None, problem: str):
        self.kind, self.field, self.problem = str(kind), field, problem
        where = f"field {field!r} " if field else ""
        super().__init__(f"leader event {self.kind!r}: {where}{problem}")


# --- the kinds ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderEventData:
    """What every event names: the instrument."""

    KIND: ClassVar[Kind]
    instrument_id: int
    symbol: str
    # The instrument's mark when the event was recorded (``events.leader_event_record``
    # adds it): a replay of the event prices its copies at it (followers/replay).
    # Absent in events recorded before it existed, and for an instrument without a mark.
    mark: Decimal | None = None

    @property
    def kind(self) -> Kind:
        return self.KIND

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        for name, (codec, optional) in _spec(type(self)).items():
            value = getattr(self, name)
            if value is None:
                if optional:
                    continue
                payload[name] = None
            else:
                payload[name] = codec.dump(value)
        return payload

    @classmethod
    def from_payload(cls, payload: Any) -> Self:
        if not isinstance(payload, dict):
            raise EventPayloadError(cls.KIND, None, f"the payload must be an object, not {type(payload).__name__}")
        values: dict[str, Any] = {}
        for name, (codec, optional) in _spec(cls).items():
            if name not in payload:
                if optional:
                    continue
                raise EventPayloadError(cls.KIND, name, "is missing")
            raw = payload[name]
            if raw is None:
                if not codec.nullable:
                    raise EventPayloadError(cls.KIND, name, "must not be null")
                values[name] = None
                continue
            try:
                values[name] = codec.load(raw)
            except (TypeError, ValueError, InvalidOperation) as exc:
                raise EventPayloadError(cls.KIND, name, str(exc)) from None
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class FillEvent(LeaderEventData):
    """A fill of the leader's order (market, limit or trigger)."""

    order_side: str
    price: Decimal  # the leader's fill price
    order_id: int  # the leader's filled order
    # Why it filled without an API order: "limit", "take_profit", "stop_loss", "liquidation".
    trigger: str | None = None
    # A fill of the leader's limit order: which order, its whole quantity (a
    # flip splits it into a close and an open step) and whether this step is
    # the order's last.
    limit_order_id: int | None = None
    order_quantity: Decimal | None = None
    limit_final: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosingFillEvent(FillEvent):
    """A reduce, close or sell: the leader's quantity and what it held
    before, exact, so a follower's share is mirror x quantity ÷
    quantity_before with one division (decisions.Share). ``fraction`` (the
    quotient, rounded to 28 digits) is for people; events recorded before
    the quantities carry only it (closes: nothing), and are sized from it."""

    quantity: Decimal | None = None
    quantity_before: Decimal | None = None
    fraction: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionOpen(FillEvent):
    """The leader opened or increased a margin position."""

    KIND = Kind.POSITION_OPEN
    leader_position_id: int
    quantity: Decimal
    leverage: int
    leader_equity: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionReduce(ClosingFillEvent):
    KIND = Kind.POSITION_REDUCE
    leader_position_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionClose(ClosingFillEvent):
    KIND = Kind.POSITION_CLOSE
    leader_position_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotBuy(FillEvent):
    KIND = Kind.SPOT_BUY
    quantity: Decimal
    leader_equity: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotSell(ClosingFillEvent):
    KIND = Kind.SPOT_SELL


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitOrderEvent(LeaderEventData):
    """The leader's resting limit order (``price`` is its limit)."""

    order_side: str
    price: Decimal
    quantity: Decimal
    leader_order_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitPlaced(LimitOrderEvent):
    KIND = Kind.LIMIT_PLACED
    leverage: int
    leader_equity: Decimal
    # A spot limit sell: followers rest a sell of the same share of their
    # holding (holding x quantity ÷ quantity_before).
    quantity_before: Decimal | None = None
    fraction: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitRepriced(LimitOrderEvent):
    KIND = Kind.LIMIT_REPRICED
    leverage: int
    previous_price: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitCancelled(LimitOrderEvent):
    """Cancelled by the leader (leverage given), or ended by the venue
    without a fill (``reason``, e.g. INSUFFICIENT_MARGIN)."""

    KIND = Kind.LIMIT_CANCELLED
    leverage: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TpslSet(LeaderEventData):
    """TP and SL of the leader's position (null: none)."""

    KIND = Kind.TPSL_SET
    leader_position_id: int
    take_profit: Decimal | None
    stop_loss: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionEdit(LeaderEventData):
    """A leverage change of the leader's position (not propagated)."""

    KIND = Kind.POSITION_EDIT
    leader_position_id: int
    field: str
    previous_leverage: int
    leverage: int
    margin: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderNotCopied(LeaderEventData):
    """A leader order of a type that is never copied (SPEC §4)."""

    KIND = Kind.ORDER_NOT_COPIED
    order_side: str
    order_type: str
    quantity: Decimal
    reason_code: str
    price: Decimal | None = None


EVENT_TYPES: dict[Kind, type[LeaderEventData]] = {
    cls.KIND: cls
    for cls in (
        PositionOpen, PositionReduce, PositionClose, SpotBuy, SpotSell, LimitPlaced, LimitRepriced,
        LimitCancelled, TpslSet, PositionEdit, OrderNotCopied,
    )
}  # fmt: skip
assert set(EVENT_TYPES) == set(Kind), "every kind has exactly one dataclass"

# Groups the engine reads (kinds, as plain strings).
POSITION_KINDS = (Kind.POSITION_OPEN.value, Kind.POSITION_REDUCE.value, Kind.POSITION_CLOSE.value)
LIMIT_KINDS = (Kind.LIMIT_PLACED.value, Kind.LIMIT_REPRICED.value, Kind.LIMIT_CANCELLED.value)
FILL_KINDS = (*POSITION_KINDS, Kind.SPOT_BUY.value, Kind.SPOT_SELL.value)


def parse(kind: str, payload: Any) -> LeaderEventData:
    """The typed event of a stored (kind, payload)."""
    try:
        cls = EVENT_TYPES[Kind(kind)]
    except ValueError:
        raise EventPayloadError(kind, None, "is not a known kind") from None
    return cls.from_payload(payload)


# --- field codecs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Codec:
    type: type
    nullable: bool

    def dump(self, value: Any) -> Any:
        if self.type is Decimal:
            return str(value)
        return value

    def load(self, raw: Any) -> Any:
        if self.type is Decimal:
            # Strings only: a JSON number would have gone through a float.
            if not isinstance(raw, str):
                raise TypeError(f"must be a decimal string, not {type(raw).__name__}")
            value = Decimal(raw)
            if not value.is_finite():
                raise ValueError(f"must be a finite decimal, not {raw!r}")
            return value
        if self.type is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise TypeError(f"must be an integer, not {type(raw).__name__}")
            return raw
        if not isinstance(raw, self.type):
            raise TypeError(f"must be a {self.type.__name__}, not {type(raw).__name__}")
        return raw


_SPECS: dict[type, dict[str, tuple[_Codec, bool]]] = {}


def _spec(cls: type) -> dict[str, tuple[_Codec, bool]]:
    """name -> (codec, optional) for the dataclass's fields, built once."""
    spec = _SPECS.get(cls)
    if spec is None:
        hints = typing.get_type_hints(cls)
        spec = {}
        for f in fields(cls):
            hint = hints[f.name]
            args = typing.get_args(hint) if isinstance(hint, UnionType) else (hint,)
            nullable = NoneType in args
            (base,) = [a for a in args if a is not NoneType]
            if base not in (Decimal, int, str, bool):
                raise TypeError(f"{cls.__name__}.{f.name}: unsupported payload type {hint}")
            optional = f.default is None
            if f.default is not MISSING and not optional:
                raise TypeError(f"{cls.__name__}.{f.name}: an optional field defaults to None")
            spec[f.name] = (_Codec(base, nullable), optional)
        _SPECS[cls] = spec
    return spec
