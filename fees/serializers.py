"""DRF serializers of the fees app. Money is rendered as strings."""

from rest_framework import serializers

from copytrading.serializers import ModelSerializer, MoneyField
from fees.models import FeeModel, LeaderWithdrawal

PCT = {"max_digits": 5, "decimal_places": 2}


class WithdrawalCreateSerializer(serializers.Serializer):
    # Omitted: withdraw everything available (rounded down to whole cents).
    amount = MoneyField(required=False, min_value=0)


class WithdrawalSerializer(ModelSerializer):
    class Meta:
        model = LeaderWithdrawal
        fields = ["id", "portfolio_id", "amount", "requested_amount", "currency", "created_at"]


class FeeModelSerializer(serializers.Serializer):
    fee_model = serializers.ChoiceField(
        choices=FeeModel.choices,
        help_text="per_trade: each closed profitable mirror pays profit_share_pct of its profit. "
        "high_water_mark: only the subscription's cumulative realized result above its previous high pays.",
    )
    profit_share_pct = serializers.DecimalField(
        **PCT, read_only=True, help_text='A percent of the profit, e.g. "15.00" for 15 %.'
    )


class CapsSerializer(serializers.Serializer):
    max_profit_share_pct = serializers.DecimalField(**PCT)
    platform_cut_pct = serializers.DecimalField(**PCT)
    max_followers = serializers.IntegerField()


class FeeTotalSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    fees = MoneyField()
    fees_due = MoneyField(required=False)


class FeePeriodSerializer(serializers.Serializer):
    period = serializers.DateField()
    count = serializers.IntegerField()
    fees = MoneyField()


class SubscriptionFeesSerializer(serializers.Serializer):
    total = FeeTotalSerializer()
    by_day = FeePeriodSerializer(many=True)
    by_week = FeePeriodSerializer(many=True)
    by_month = FeePeriodSerializer(many=True)


class EarningPeriodSerializer(serializers.Serializer):
    period = serializers.DateField()
    count = serializers.IntegerField()
    earned = MoneyField()


class EarningFollowerSerializer(serializers.Serializer):
    subscription_id = serializers.IntegerField()
    follower = serializers.CharField()
    count = serializers.IntegerField()
    earned = MoneyField()
    fees = MoneyField()


class EarningsSerializer(serializers.Serializer):
    total_earned = MoneyField()
    fees_charged = MoneyField()
    platform_cut = MoneyField()
    accruals = serializers.IntegerField()
    settled = MoneyField()
    pending = MoneyField()
    withdrawn = MoneyField()
    available = MoneyField()
    follower_count = serializers.IntegerField()
    by_day = EarningPeriodSerializer(many=True)
    by_week = EarningPeriodSerializer(many=True)
    by_month = EarningPeriodSerializer(many=True)
    by_follower = EarningFollowerSerializer(many=True)
