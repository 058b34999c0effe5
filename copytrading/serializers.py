from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from copytrading import reasons, valuation
from copytrading.bounds import max_length
from copytrading.models import Account, Execution, Holding, Instrument, Order, Position, PositionStatus
from copytrading.selectors import primary_pairs

MONEY = {"max_digits": 28, "decimal_places": 8}


# What a client may send: 15 whole digits (below 10^15), not the columns' 20:
# the figures computed from an amount (limits against losses, equity, fees at
# 28 significant digits) need the headroom; an amount near the column's limit
# was stored, then made every later read of it fail. The OpenAPI schema's
# pattern says so (drf-spectacular derives it from max_digits).
CLIENT_MONEY = {"max_digits": 23, "decimal_places": 8}


class MoneyField(serializers.DecimalField):
    """Every amount of money in the API: a string with exactly 8 places
    ("0.00000000", never "0E-8"), at most 20 whole digits; sent by a client,
    at most 15."""

    def __init__(self, **kwargs):
        limits = MONEY if kwargs.get("read_only") else CLIENT_MONEY
        super().__init__(**{**limits, **kwargs})


class ModelSerializer(serializers.ModelSerializer):
    """A model's 8-place decimal columns (money, quantities) render through
    MoneyField, like every hand-declared amount."""

    def build_standard_field(self, field_name, model_field):
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        if field_class is serializers.DecimalField and field_kwargs.get("decimal_places") == MONEY["decimal_places"]:
            field_class = MoneyField
        return field_class, field_kwargs


class ValuedField(MoneyField):
    """A read-only figure of a row at the current mark: ``attr`` of what the
    parent serializer's ``value_of(row)`` answers (null when it is None)."""

    def __init__(self, attr: str, *, allow_null: bool = True, **kwargs):
        super().__init__(read_only=True, allow_null=allow_null, source="*", **kwargs)
        self.attr = attr

    def to_representation(self, row):
        value = getattr(self.parent.value_of(row), self.attr)
        return None if value is None else super().to_representation(value)


class RegisterSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]{3,150}$", max_length=max_length(get_user_model(), "username"))
    # Not stored as sent (hashed): bounded so hashing stays cheap.
    password = serializers.CharField(max_length=128, write_only=True)
    email = serializers.EmailField(
        max_length=max_length(get_user_model(), "email"), required=False, allow_blank=True, default=""
    )


class TokenSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=max_length(get_user_model(), "username"))
    password = serializers.CharField(max_length=128, write_only=True)


class AmountSerializer(serializers.Serializer):
    amount = MoneyField()


class WalletSerializer(ModelSerializer):
    free = MoneyField(read_only=True)

    class Meta:
        model = Account
        fields = ["id", "kind", "currency", "balance", "locked", "free"]


class InstrumentSerializer(ModelSerializer):
    class Meta:
        model = Instrument
        fields = [
            "symbol",
            "product",
            "base",
            "quote",
            "qty_step",
            "min_qty",
            "max_qty",
            "price_tick",
            "min_notional",
            "max_leverage",
            "mark_price",
            "price_updated_at",
            "mark_flag",
            "exchange",
        ]
        extra_kwargs = {
            "mark_flag": {"help_text": "Why liquidations do not act at this mark: jump, stale; empty: trusted."},
            "exchange": {"help_text": "The ccxt exchange id the instrument is synced from; empty: a local one."},
        }


class PriceSerializer(serializers.Serializer):
    """The latest price of an instrument (null until the first one)."""

    symbol = serializers.CharField()
    price = MoneyField(source="mark_price", allow_null=True, help_text="The latest mark; null before the first price.")
    updated_at = serializers.DateTimeField(source="price_updated_at", allow_null=True)


class PriceSetSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=max_length(Instrument, "symbol"))
    price = MoneyField()


class PositionSerializer(ModelSerializer):
    """A position, and for an open one its figures at the instrument's
    current mark (no extra query: the instrument is loaded with the row)."""

    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    mark_price = ValuedField(
        "mark_price", help_text="The instrument's current mark; null for a closed position or before the first price."
    )
    unrealized_pnl = ValuedField(
        "unrealized_pnl",
        help_text="PnL if closed at the mark: (mark - entry) x quantity for a long, (entry - mark) x quantity "
        "for a short; a loss is capped at the position's isolated margin (all closing it could cost), as the "
        "risk watchdog counts it. Null for a closed position (see realized_pnl).",
    )
    notional = ValuedField("notional", help_text="quantity x mark; null for a closed position.")
    margin_level_pct = ValuedField(
        "margin_level_pct",
        help_text="(margin + unrealized_pnl) / margin x 100, percent: 100 at entry, 0 when the isolated margin "
        "is lost. Null for a closed position.",
    )

    class Meta:
        model = Position
        fields = [
            "id",
            "symbol",
            "side",
            "quantity",
            "opened_quantity",
            "entry_price",
            "leverage",
            "margin",
            "status",
            "realized_pnl",
            "take_profit",
            "stop_loss",
            "leader_position",
            "opened_at",
            "closed_at",
            "mark_price",
            "unrealized_pnl",
            "notional",
            "margin_level_pct",
        ]

    def value_of(self, position: Position) -> valuation.PositionValue:
        if position.status != PositionStatus.OPEN:
            return valuation.NO_POSITION_VALUE
        return valuation.position_value(
            side=position.side,
            quantity=position.quantity,
            entry_price=position.entry_price,
            margin=position.margin,
            mark=position.instrument.mark_price,
        )


class HoldingSerializer(ModelSerializer):
    """A spot holding at the mark of its primary-currency pair; the marks of
    a whole page are loaded in one query."""

    mark_price = ValuedField(
        "mark_price",
        help_text="The mark of the asset's spot pair quoted in the primary currency; null when there is no "
        "such priced pair.",
    )
    value = ValuedField(
        "value",
        allow_null=False,
        help_text="quantity x mark_price; the cost basis when there is no mark (the asset is held at cost).",
    )
    unrealized_pnl = ValuedField("unrealized_pnl", help_text="value - cost_basis; null (not 0) when there is no mark.")

    class Meta:
        model = Holding
        fields = ["asset", "quantity", "reserved", "cost_basis", "mark_price", "value", "unrealized_pnl"]

    def value_of(self, holding: Holding) -> valuation.HoldingValue:
        marks = self.context.get("primary_marks")
        if marks is None:
            # Once for the page: the assets of every row being serialized.
            rows = self.root.instance if isinstance(self.root, serializers.ListSerializer) else [holding]
            marks = self.context["primary_marks"] = {
                asset: mark for asset, (mark, _) in primary_pairs(row.asset for row in rows).items()
            }
        return valuation.holding_value(
            quantity=holding.quantity, cost_basis=holding.cost_basis, mark=marks.get(holding.asset)
        )


class OrderSerializer(ModelSerializer):
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "symbol",
            "side",
            "order_type",
            "quantity",
            "price",
            "leverage",
            "status",
            "reserved",
            "position",
            "leader_order",
            "created_at",
            "filled_at",
            "realized_pnl",
        ]


class ExchangeExecutionSerializer(serializers.Serializer):
    """The copy's order at the exchange: its timeline (decision, first send,
    the exchange's acknowledgement, the fill) and, if it was refused, why."""

    client_order_id = serializers.CharField()
    status = serializers.CharField()
    decided_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    filled_at = serializers.DateTimeField(allow_null=True)
    filled_quantity = serializers.DecimalField(max_digits=30, decimal_places=12)
    average_price = serializers.DecimalField(max_digits=30, decimal_places=12, allow_null=True)
    reject_code = serializers.CharField()


def exchange_order_of(execution):
    """The exchange order behind an execution row, or None (a paper copy);
    loaded by ``select_related("order__exchange_order")``."""
    order = execution.order if execution.order_id is not None else None
    if order is None:
        return None
    try:
        return order.exchange_order
    except ObjectDoesNotExist:
        return None


class ExecutionSerializer(ModelSerializer):
    event_kind = serializers.CharField(source="event.kind", read_only=True)
    event_seq = serializers.IntegerField(source="event.seq", read_only=True)
    exchange = serializers.SerializerMethodField(
        help_text="A copy placed on an exchange account: its order's decision, submit, acknowledgement and fill "
        "times; null for a paper copy."
    )

    reason_text = serializers.SerializerMethodField(
        help_text="The reason code as a sentence (copytrading.reasons), quoting what the decision saw; "
        "empty for a copied row."
    )

    @extend_schema_field(ExchangeExecutionSerializer(allow_null=True))
    def get_exchange(self, obj) -> dict | None:
        row = exchange_order_of(obj)
        return ExchangeExecutionSerializer(row).data if row is not None else None

    def get_reason_text(self, obj) -> str:
        return reasons.reason_text(obj.reason_code, reasons.execution_values(obj))

    class Meta:
        model = Execution
        fields = [
            "id",
            "event",
            "event_kind",
            "event_seq",
            "outcome",
            "reason_code",
            "reason_text",
            "reason_detail",
            "leader_quantity",
            "leader_fraction",
            "leader_price",
            "follower_quantity",
            "follower_price",
            "attempted_quantity",
            "free_balance",
            "min_quantity",
            "min_notional",
            "quantity_step",
            "price_used",
            "order",
            "exchange",
            "created_at",
        ]
        read_only_fields = fields


class ClosePositionSerializer(serializers.Serializer):
    quantity = MoneyField(required=False, allow_null=True)
