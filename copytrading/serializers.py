from django.contrib.auth import get_user_model
from rest_framework import serializers

from copytrading.bounds import max_length
from copytrading.models import Account, Execution, Holding, Instrument, Order, Position

MONEY = {"max_digits": 28, "decimal_places": 8}


class MoneyField(serializers.DecimalField):
    """Every amount of money in the API: a string with exactly 8 places
    ("0.00000000", never "0E-8"), at most 20 whole digits."""

    def __init__(self, **kwargs):
        super().__init__(**{**MONEY, **kwargs})


class ModelSerializer(serializers.ModelSerializer):
    """A model's 8-place decimal columns (money, quantities) render through
    MoneyField, like every hand-declared amount."""

    def build_standard_field(self, field_name, model_field):
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        if field_class is serializers.DecimalField and field_kwargs.get("decimal_places") == MONEY["decimal_places"]:
            field_class = MoneyField
        return field_class, field_kwargs


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
        ]


class PriceSerializer(serializers.Serializer):
    """The latest price of an instrument (null until the first one)."""

    symbol = serializers.CharField()
    price = MoneyField(source="mark_price", allow_null=True, help_text="The latest mark; null before the first price.")
    updated_at = serializers.DateTimeField(source="price_updated_at", allow_null=True)


class PriceSetSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=max_length(Instrument, "symbol"))
    price = MoneyField()


class PositionSerializer(ModelSerializer):
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)

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
        ]


class HoldingSerializer(ModelSerializer):
    class Meta:
        model = Holding
        fields = ["asset", "quantity", "reserved", "cost_basis"]


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


class ExecutionSerializer(ModelSerializer):
    event_kind = serializers.CharField(source="event.kind", read_only=True)
    event_seq = serializers.IntegerField(source="event.seq", read_only=True)

    class Meta:
        model = Execution
        fields = [
            "id",
            "event",
            "event_kind",
            "event_seq",
            "outcome",
            "reason_code",
            "leader_quantity",
            "leader_fraction",
            "leader_price",
            "follower_quantity",
            "follower_price",
            "order",
            "created_at",
        ]


class ClosePositionSerializer(serializers.Serializer):
    quantity = MoneyField(required=False, allow_null=True)
