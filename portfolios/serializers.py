from rest_framework import serializers

from copytrading.serializers import MONEY
from portfolios.models import Portfolio, PortfolioMode


class PortfolioSerializer(serializers.ModelSerializer):
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
            "is_public",
            "status",
            "created_at",
        ]
        read_only_fields = ["id", "leader", "status", "created_at"]


class PortfolioCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    mode = serializers.ChoiceField(choices=PortfolioMode.choices, default=PortfolioMode.MARGIN)
    min_investment = serializers.DecimalField(**MONEY, min_value=0, required=False, default=0)
    profit_share_pct = serializers.DecimalField(max_digits=5, decimal_places=2, min_value=0, max_value=100, default=0)
    is_public = serializers.BooleanField(default=True)


class TradingAccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    balance = serializers.DecimalField(**MONEY)
    locked = serializers.DecimalField(**MONEY)
    free = serializers.DecimalField(**MONEY)


class OrderPlaceSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=40)
    side = serializers.ChoiceField(choices=["buy", "sell"])
    quantity = serializers.DecimalField(**MONEY)
    leverage = serializers.IntegerField(min_value=1, max_value=1000, default=1)
    type = serializers.ChoiceField(choices=["market"], default="market")
