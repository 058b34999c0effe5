from rest_framework import serializers

from copytrading.bounds import ID_BOUNDS, max_length
from copytrading.models import Instrument
from copytrading.serializers import ModelSerializer, MoneyField
from portfolios.models import Portfolio, PortfolioMode


class PortfolioSerializer(ModelSerializer):
    leader = serializers.CharField(source="leader.username", read_only=True)
    profit_share_pct = serializers.DecimalField(
        max_digits=5, decimal_places=2, required=False, help_text='Percent of each profit, e.g. "15.00" for 15 %.'
    )

    class Meta:
        model = Portfolio
        fields = [
            "id",
            "name",
            "leader",
            "description",
            "mode",
            "min_investment",
            "profit_share_pct",
            "fee_model",
            "is_public",
            "x_url",
            "telegram_url",
            "website_url",
            "status",
            "close_reason",
            "closing_started_at",
            "archived_at",
            "created_at",
        ]
        # fee_model is set through /portfolios/<id>/fee-model.
        read_only_fields = [
            "id", "leader", "fee_model", "status", "close_reason", "closing_started_at", "archived_at", "created_at",
        ]  # fmt: skip


class PortfolioCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=max_length(Portfolio, "name"))
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    mode = serializers.ChoiceField(choices=PortfolioMode.choices, default=PortfolioMode.MARGIN)
    min_investment = MoneyField(min_value=0, required=False, default=0)
    profit_share_pct = serializers.DecimalField(max_digits=5, decimal_places=2, min_value=0, max_value=100, default=0)
    is_public = serializers.BooleanField(default=True)
    # Shape only here; portfolios/validation.py gives the stable codes.
    passcode = serializers.CharField(
        max_length=32, required=False, allow_blank=True, write_only=True, help_text="8 digits; private portfolios."
    )
    x_url = serializers.CharField(
        max_length=max_length(Portfolio, "x_url"), required=False, allow_blank=True, default=""
    )
    telegram_url = serializers.CharField(
        max_length=max_length(Portfolio, "telegram_url"), required=False, allow_blank=True, default=""
    )
    website_url = serializers.CharField(
        max_length=max_length(Portfolio, "website_url"), required=False, allow_blank=True, default=""
    )
    exchange_account_id = serializers.IntegerField(
        **ID_BOUNDS,
        required=False,
        help_text="Bind the new (margin) portfolio to this linked exchange account: its trades there are copied.",
    )


class PortfolioUpdateSerializer(serializers.Serializer):
    """PATCH: only the fields sent change (the mode is fixed at creation)."""

    name = serializers.CharField(max_length=max_length(Portfolio, "name"), required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    min_investment = MoneyField(required=False)
    profit_share_pct = serializers.DecimalField(max_digits=5, decimal_places=2, required=False)
    is_public = serializers.BooleanField(required=False)
    passcode = serializers.CharField(max_length=32, required=False, allow_blank=True, write_only=True)
    x_url = serializers.CharField(max_length=max_length(Portfolio, "x_url"), required=False, allow_blank=True)
    telegram_url = serializers.CharField(
        max_length=max_length(Portfolio, "telegram_url"), required=False, allow_blank=True
    )
    website_url = serializers.CharField(
        max_length=max_length(Portfolio, "website_url"), required=False, allow_blank=True
    )


class PortfolioCloseSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=max_length(Portfolio, "close_reason"), required=False, allow_blank=True, default=""
    )


class TradingAccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    balance = MoneyField()
    locked = MoneyField()
    free = MoneyField()


class PortfolioDetailSerializer(PortfolioSerializer):
    """The leader's own view: the portfolio and its trading account."""

    trading_account = TradingAccountSerializer(read_only=True)

    class Meta(PortfolioSerializer.Meta):
        fields = [*PortfolioSerializer.Meta.fields, "trading_account"]


class LeaderEventSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    seq = serializers.IntegerField(help_text="The event's sequence number within its portfolio.")
    kind = serializers.CharField(help_text="position_open, position_close, limit_placed, tpsl_set, ...")
    payload = serializers.DictField(help_text="What followers are copied from (instrument, side, sizes, prices).")


class LeaderEventsSerializer(serializers.Serializer):
    """What a leader's order, close, cancel or TP/SL change committed: the
    leader events propagated to followers, in order."""

    events = LeaderEventSerializer(many=True)


class OrderPlaceSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=max_length(Instrument, "symbol"))
    side = serializers.ChoiceField(choices=["buy", "sell"])
    quantity = MoneyField()
    leverage = serializers.IntegerField(min_value=1, max_value=1000, default=1)
    # market or limit; other types are refused by the service with their own
    # codes (ADVANCED_ORDER_NOT_SUPPORTED, STOP_ORDER_NOT_SUPPORTED_FOR_COPY).
    type = serializers.CharField(max_length=20, default="market")
    price = MoneyField(required=False, allow_null=True, help_text="The limit price.")


class OrderRepriceSerializer(serializers.Serializer):
    price = MoneyField()


class TpslSerializer(serializers.Serializer):
    """One TP and one SL; an omitted one stays, null clears it."""

    take_profit = MoneyField(required=False, allow_null=True)
    stop_loss = MoneyField(required=False, allow_null=True)


class TpslItemSerializer(TpslSerializer):
    position = serializers.IntegerField(**ID_BOUNDS)


class TpslBatchSerializer(serializers.Serializer):
    # Each item is checked by the view (multi-level TP/SL has its own code).
    items = serializers.ListField(child=serializers.DictField(), max_length=100)


class TpslBatchRequestSerializer(serializers.Serializer):
    """The batch's documented shape: 1 to 100 items, one per position."""

    items = serializers.ListField(child=TpslItemSerializer(), min_length=1, max_length=100)


class PositionEditSerializer(serializers.Serializer):
    leverage = serializers.IntegerField(min_value=1, max_value=1000)


class ExchangeBindSerializer(serializers.Serializer):
    exchange_account_id = serializers.IntegerField(**ID_BOUNDS)


class PortfolioExchangeBindingSerializer(serializers.Serializer):
    """A portfolio's binding: its exchange account (null: the paper venue)
    and its trading account's balance, which mirrors the exchange's while bound."""

    portfolio = serializers.IntegerField()
    exchange_account_id = serializers.IntegerField(allow_null=True)
    balance = serializers.DecimalField(max_digits=30, decimal_places=8)


class ExchangeOrderSentSerializer(serializers.Serializer):
    """A leader's order sent to the exchange (it becomes a leader event when
    its fill is detected)."""

    client_order_id = serializers.CharField()
    exchange_order_id = serializers.CharField()
    status = serializers.CharField()
