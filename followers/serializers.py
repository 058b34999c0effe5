from rest_framework import serializers

from copytrading.bounds import ID_BOUNDS, int_bounds, max_length
from copytrading.serializers import ModelSerializer, MoneyField
from copytrading.sizing import SizingModel
from followers.models import Subscription, profit_share_due
from followers.selectors import pause_detail, risk_views
from risk.models import RiskLimits

# Generous digits: the service checks every range and names it (OUT_OF_RANGE,
# INVALID_PRECISION), the same at subscribe and on every settings update.
WIDE = {"max_digits": 28, "decimal_places": 8}


class OptionalBooleanField(serializers.BooleanField):
    """A boolean left out of a form-encoded body is "not given" (DRF would
    read it as an unticked checkbox, False), as it is in JSON."""

    default_empty_html = serializers.empty


class CopyWalletSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    balance = MoneyField()
    locked = MoneyField()
    free = MoneyField()
    is_closed = serializers.BooleanField()


class SubscriptionSerializer(ModelSerializer):
    portfolio_name = serializers.CharField(source="portfolio.name", read_only=True)
    wallet = CopyWalletSerializer(source="copy_account", read_only=True)
    pause_detail = serializers.SerializerMethodField()
    risk = serializers.SerializerMethodField()
    profit_share_pct = serializers.SerializerMethodField(
        help_text='The profit share (percent, e.g. "15.00") this copy pays: the lower of the share agreed at '
        "subscribe and the portfolio's current one."
    )

    class Meta:
        model = Subscription
        fields = [
            "id",
            "portfolio",
            "portfolio_name",
            "status",
            "pause_reason",
            "pause_detail",
            "end_reason",
            "template_ref",
            "sizing_model",
            "multiplier",
            "fixed_notional",
            "risk_factor",
            "leverage_override",
            "copy_margin",
            "copy_spot",
            "slippage_tolerance_pct",
            "invested",
            "profit_share_pct",
            "wallet",
            "risk",
            "created_at",
            "ended_at",
        ]

    def _risk(self, obj) -> dict:
        # The list view loads every subscription's risk at once; a single
        # one is loaded here, once for both fields.
        views = self.context.setdefault("risk", {})
        if obj.pk not in views:
            views.update(risk_views([obj.pk]))
        return views[obj.pk]

    def get_pause_detail(self, obj) -> str:
        return pause_detail(obj, self._risk(obj))

    def get_risk(self, obj) -> dict:
        return self._risk(obj)

    def get_profit_share_pct(self, obj) -> str:
        return str(profit_share_due(obj.portfolio.profit_share_pct, obj.agreed_profit_share_pct))


class SettingsSerializer(serializers.Serializer):
    """Copy settings and risk limits, each optional: what is given is set."""

    sizing_model = serializers.ChoiceField(choices=SizingModel.ALL, required=False)
    multiplier = serializers.DecimalField(**WIDE, required=False, allow_null=True)
    fixed_notional = MoneyField(required=False, allow_null=True)
    risk_factor = serializers.DecimalField(**WIDE, required=False, allow_null=True)
    # Column bounds only; the service checks the product's ranges and names them.
    leverage_override = serializers.IntegerField(
        **int_bounds(Subscription, "leverage_override"), required=False, allow_null=True
    )
    copy_margin = OptionalBooleanField(required=False)
    copy_spot = OptionalBooleanField(required=False)
    slippage_tolerance_pct = serializers.DecimalField(**WIDE, required=False, help_text="Percent, [0, 100].")
    daily_loss_limit_realized = MoneyField(required=False, allow_null=True)
    daily_loss_limit_unrealized = MoneyField(required=False, allow_null=True)
    margin_call_level_pct = serializers.DecimalField(**WIDE, required=False, allow_null=True)
    max_drawdown_pct = serializers.DecimalField(**WIDE, required=False, allow_null=True)
    max_open_positions = serializers.IntegerField(
        **int_bounds(RiskLimits, "max_open_positions"), required=False, allow_null=True
    )
    max_exposure_pct = serializers.DecimalField(**WIDE, required=False, allow_null=True)


class SubscribeSerializer(SettingsSerializer):
    portfolio = serializers.IntegerField(**ID_BOUNDS)
    amount = MoneyField()
    template = serializers.CharField(
        max_length=max_length(Subscription, "template_ref"),
        required=False,
        allow_blank=True,
        help_text='"conservative", "balanced", "aggressive", or the id of one of the portfolio\'s templates; '
        "settings given beside it override the template's.",
    )
    # A private portfolio's 8-digit passcode; wrong ones are throttled per user
    # and per portfolio (403 PASSCODE_INVALID, then 429 PASSCODE_LOCKED).
    passcode = serializers.CharField(max_length=32, required=False, allow_blank=True, write_only=True)


class MoneyMoveSerializer(serializers.Serializer):
    amount = MoneyField()
    idempotency_key = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")


class UnfollowResultSerializer(serializers.Serializer):
    subscription = SubscriptionSerializer()
    closed_positions = serializers.IntegerField()
    cancelled_orders = serializers.IntegerField()
    sold_holdings = serializers.IntegerField()
    returned = MoneyField()
    already_ended = serializers.BooleanField()


class CommitmentSerializer(serializers.Serializer):
    main_balance = MoneyField()
    main_free = MoneyField()
    committed = MoneyField(help_text="Σ balances of the live copy wallets.")
    invested = MoneyField(help_text="Σ capital paid into live copies, net of withdrawals.")
    active = serializers.IntegerField()
    paused = serializers.IntegerField()
    ended = serializers.IntegerField()
