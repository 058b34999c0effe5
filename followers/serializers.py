from rest_framework import serializers

from copytrading.decisions import DEFAULT_SLIPPAGE_TOLERANCE_PCT
from copytrading.serializers import MONEY
from copytrading.sizing import SizingModel
from followers.models import Subscription


class SubscriptionSerializer(serializers.ModelSerializer):
    portfolio_name = serializers.CharField(source="portfolio.name", read_only=True)
    wallet = serializers.SerializerMethodField()

    class Meta:
        model = Subscription
        fields = [
            "id",
            "portfolio",
            "portfolio_name",
            "status",
            "pause_reason",
            "sizing_model",
            "multiplier",
            "fixed_notional",
            "risk_factor",
            "leverage_override",
            "copy_margin",
            "copy_spot",
            "slippage_tolerance_pct",
            "invested",
            "wallet",
            "created_at",
            "ended_at",
        ]

    def get_wallet(self, obj) -> dict:
        account = obj.copy_account
        return {
            "id": account.pk,
            "balance": str(account.balance),
            "locked": str(account.locked),
            "free": str(account.free),
        }


class SubscribeSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    amount = serializers.DecimalField(**MONEY)
    sizing_model = serializers.ChoiceField(choices=SizingModel.ALL, default=SizingModel.PROGRESSIVE)
    multiplier = serializers.DecimalField(max_digits=12, decimal_places=8, required=False, allow_null=True)
    fixed_notional = serializers.DecimalField(**MONEY, required=False, allow_null=True)
    risk_factor = serializers.DecimalField(max_digits=12, decimal_places=8, required=False, allow_null=True)
    leverage_override = serializers.IntegerField(required=False, allow_null=True)
    copy_margin = serializers.BooleanField(default=True)
    copy_spot = serializers.BooleanField(default=True)
    # Percent; the range [0, 100] is checked by the service (OUT_OF_RANGE).
    slippage_tolerance_pct = serializers.DecimalField(
        max_digits=12, decimal_places=8, required=False, default=DEFAULT_SLIPPAGE_TOLERANCE_PCT
    )
