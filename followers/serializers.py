from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from copytrading import live
from copytrading.bounds import ID_BOUNDS, int_bounds, max_length
from copytrading.serializers import ModelSerializer, MoneyField
from copytrading.sizing import SizingModel
from followers.models import Subscription, profit_share_due
from followers.selectors import copy_snapshots, pause_detail, risk_views
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


class CopyFiguresSerializer(serializers.Serializer):
    """A copy at the current marks (followers.snapshot.copy_snapshot; the
    stream's ``copies`` topic carries the same fields)."""

    balance = MoneyField(help_text="The copy wallet's cash, margin in use included.")
    equity = MoneyField(
        help_text="balance + unrealized PnL of the open positions + spot holdings at mark (at cost without a "
        "priced primary-currency pair): what the risk watchdog measures."
    )
    unrealized_pnl = MoneyField(
        help_text="Open positions at mark (each loss capped at its isolated margin) plus spot holdings at mark "
        "less their cost basis."
    )
    realized_pnl = MoneyField(
        help_text="Realized since the copy began, net of the fees it paid: total_pnl - unrealized_pnl."
    )
    total_pnl = MoneyField(help_text="realized_pnl + unrealized_pnl = equity + withdrawn - funded.")
    roi_pct = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="total_pnl / money paid in x 100, percent (0 with nothing paid in)."
    )
    margin_level_pct = MoneyField(
        allow_null=True,
        help_text="equity / margin in use x 100, percent, as the margin-call rule measures it; null without "
        "open positions.",
    )
    realized_loss_today = MoneyField(
        help_text="The realized loss since 00:00 UTC (margin closes and spot sells), 0 after a profitable day."
    )
    unrealized_loss = MoneyField(help_text="The open loss, margin and spot; 0 when the copy is in profit.")
    daily_loss_limit_realized = MoneyField(allow_null=True, help_text="The realized daily loss limit; null: none.")
    daily_loss_headroom_realized = MoneyField(
        allow_null=True,
        help_text="daily_loss_limit_realized - realized_loss_today, at least 0: the loss still allowed today "
        "before the watchdog pauses the copy (at 0 it pauses). Null without a limit.",
    )
    daily_loss_limit_unrealized = MoneyField(allow_null=True, help_text="The unrealized loss limit; null: none.")
    daily_loss_headroom_unrealized = MoneyField(
        allow_null=True,
        help_text="daily_loss_limit_unrealized - unrealized_loss, at least 0: the open loss still allowed before "
        "the watchdog pauses the copy and closes its positions. Null without a limit.",
    )


class ExchangeBindingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    exchange = serializers.CharField()
    label = serializers.CharField()
    api_key_hint = serializers.CharField()


class SubscriptionSerializer(ModelSerializer):
    portfolio_name = serializers.CharField(source="portfolio.name", read_only=True)
    wallet = CopyWalletSerializer(source="copy_account", read_only=True)
    pause_detail = serializers.SerializerMethodField()
    risk = serializers.SerializerMethodField()
    figures = serializers.SerializerMethodField(
        help_text="The copy at the current marks: equity, realized and unrealized PnL, ROI and today's losses "
        "against the daily limits (status and pause_reason are beside it)."
    )
    exchange_account = serializers.SerializerMethodField(
        help_text="The linked exchange account the copies are placed on (id, exchange, label, key hint); "
        "null: the copies execute on the paper venue."
    )
    copying_halted = serializers.SerializerMethodField(
        help_text="Staff halted copying of this portfolio (or all copying): new trades are not copied "
        "(skipped COPYING_HALTED); closes, reduces and sells still are."
    )
    copying_halted_reason = serializers.SerializerMethodField(
        help_text="The staff's reason while copying_halted, else null."
    )
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
            "exchange_account",
            "figures",
            "risk",
            "created_at",
            "ended_at",
            "copying_halted",
            "copying_halted_reason",
        ]

    def _risk(self, obj) -> dict:
        # The list view loads every subscription's risk at once; a single
        # one is loaded here, once for both fields.
        views = self.context.setdefault("risk", {})
        if obj.pk not in views:
            views.update(risk_views([obj.pk]))
        return views[obj.pk]

    @extend_schema_field(CopyFiguresSerializer)
    def get_figures(self, obj) -> dict:
        # Loaded once for every subscription being serialized (a page).
        snapshots = self.context.get("figures")
        if snapshots is None or obj.pk not in snapshots:
            root = self.root
            rows = list(root.instance) if isinstance(root, serializers.ListSerializer) else []
            snapshots = self.context["figures"] = copy_snapshots(rows if obj in rows else [obj])
        return CopyFiguresSerializer(snapshots[obj.pk]).data

    def get_pause_detail(self, obj) -> str:
        return pause_detail(obj, self._risk(obj))

    def get_risk(self, obj) -> dict:
        return self._risk(obj)

    @extend_schema_field(ExchangeBindingSerializer(allow_null=True))
    def get_exchange_account(self, obj) -> dict | None:
        if obj.copy_account.exchange_account_id is None:  # no query for a paper copy
            return None
        return ExchangeBindingSerializer(obj.copy_account.exchange_account).data

    def get_copying_halted(self, obj) -> bool:
        return live.current().is_halted(obj.portfolio_id)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_copying_halted_reason(self, obj) -> str | None:
        return live.current().halt_reason(obj.portfolio_id)

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


def template_field() -> serializers.CharField:
    """The template a copy starts from (subscribe, and the simulator's "what if")."""
    return serializers.CharField(
        max_length=max_length(Subscription, "template_ref"),
        required=False,
        allow_blank=True,
        help_text='"conservative", "balanced", "aggressive", or the id of one of the portfolio\'s templates; '
        "settings given beside it override the template's.",
    )


class SubscribeSerializer(SettingsSerializer):
    portfolio = serializers.IntegerField(**ID_BOUNDS)
    amount = MoneyField()
    template = template_field()
    # A private portfolio's 8-digit passcode; wrong ones are throttled per user
    # and per portfolio (403 PASSCODE_INVALID, then 429 PASSCODE_LOCKED).
    passcode = serializers.CharField(max_length=32, required=False, allow_blank=True, write_only=True)
    exchange_account_id = serializers.IntegerField(
        **ID_BOUNDS,
        required=False,
        help_text="One of your linked exchange accounts (valid, not carrying another copy): the copies are "
        "placed on it, and amount is the allocation, what the copy may use of its free balance.",
    )


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
    settling = serializers.BooleanField(
        help_text="A copy on an exchange account: its closes are at the exchange; it ends when they fill."
    )


class CommitmentSerializer(serializers.Serializer):
    main_balance = MoneyField()
    main_free = MoneyField()
    committed = MoneyField(help_text="Σ balances of the live copy wallets.")
    invested = MoneyField(help_text="Σ capital paid into live copies, net of withdrawals.")
    active = serializers.IntegerField()
    paused = serializers.IntegerField()
    ended = serializers.IntegerField()
