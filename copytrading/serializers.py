from rest_framework import serializers

from copytrading.models import Account, Execution, Holding, Instrument, Order, Position

MONEY = {"max_digits": 28, "decimal_places": 8}


class RegisterSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]{3,150}$", max_length=150)
    password = serializers.CharField(max_length=128, write_only=True)
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class TokenSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, write_only=True)


class AmountSerializer(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY)


class WalletSerializer(serializers.ModelSerializer):
    free = serializers.DecimalField(**MONEY, read_only=True)

    class Meta:
        model = Account
        fields = ["id", "kind", "currency", "balance", "locked", "free"]


class InstrumentSerializer(serializers.ModelSerializer):
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
    price = serializers.DecimalField(**MONEY, source="mark_price", allow_null=True)
    updated_at = serializers.DateTimeField(source="price_updated_at", allow_null=True)


class PriceSetSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=40)
    price = serializers.DecimalField(**MONEY)


class PositionSerializer(serializers.ModelSerializer):
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


class HoldingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Holding
        fields = ["asset", "quantity", "reserved", "cost_basis"]


class OrderSerializer(serializers.ModelSerializer):
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
        ]


class ExecutionSerializer(serializers.ModelSerializer):
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
            "leader_price",
            "follower_quantity",
            "follower_price",
            "order",
            "created_at",
        ]


class ClosePositionSerializer(serializers.Serializer):
    quantity = serializers.DecimalField(**MONEY, required=False, allow_null=True)
