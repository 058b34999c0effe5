"""POST /api/v1/portfolios/{id}/simulate: what a copy would have earned
(followers/replay/simulator.py)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading.auth.client import client_address
from copytrading.errors import DomainError
from copytrading.serializers import MoneyField
from followers.replay import simulator
from followers.serializers import SettingsSerializer, template_field
from portfolios.models import Portfolio
from portfolios.passcodes import passcode_check

PCT = {"max_digits": 20, "decimal_places": 8}


class SimulateSerializer(SettingsSerializer):
    amount = MoneyField(help_text="What you would invest.")
    days = serializers.ChoiceField(choices=simulator.PERIODS, default=30, help_text="The period replayed: 7, 30 or 90.")
    template = template_field()
    passcode = serializers.CharField(max_length=32, required=False, allow_blank=True, write_only=True)


class ReasonCountSerializer(serializers.Serializer):
    outcome = serializers.CharField()
    reason_code = serializers.CharField()
    count = serializers.IntegerField()
    message = serializers.CharField()


class CurvePointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    equity = MoneyField()


class PauseSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    rule = serializers.CharField()
    measured = serializers.DecimalField(**PCT)
    threshold = serializers.DecimalField(**PCT)
    closed = serializers.BooleanField(help_text="The rule also closed every mirror and sold every holding.")
    resumed_at = serializers.DateTimeField(allow_null=True, help_text="The midnight reset lifted it.")


class SimulationSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    days = serializers.IntegerField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    amount = MoneyField()
    final_equity = MoneyField(help_text="At the last recorded marks: cash, open positions and holdings.")
    pnl = MoneyField()
    roi_pct = serializers.DecimalField(**PCT)
    max_drawdown_pct = serializers.DecimalField(**PCT, help_text="The deepest fall from a high of the curve.")
    fees = MoneyField(help_text="The profit share the copy would have paid.")
    events = serializers.IntegerField(help_text="The leader's events replayed.")
    copied = serializers.IntegerField()
    skipped = serializers.IntegerField()
    rejected = serializers.IntegerField()
    failed = serializers.IntegerField()
    not_copied = ReasonCountSerializer(many=True, help_text="What was not copied, by reason, most frequent first.")
    pauses = PauseSerializer(many=True, help_text="Where the risk watchdog would have paused the copy.")
    equity_curve = CurvePointSerializer(many=True, help_text="At most 200 points, the lows kept.")


class PortfolioSimulateView(APIView):
    @extend_schema(request=SimulateSerializer, responses=SimulationSerializer)
    def post(self, request, pk):
        s = SimulateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = dict(s.validated_data)
        portfolio = Portfolio.objects.filter(pk=pk).first()
        if portfolio is None:
            raise DomainError("NOT_FOUND", "There is no such portfolio.", status=404)
        passcode_check(
            user=request.user, portfolio=portfolio, passcode=data.pop("passcode", None),
            client_address=client_address(request),
        )  # fmt: skip
        data = simulator.portfolio_simulate(
            user=request.user,
            portfolio=portfolio,
            amount=data.pop("amount"),
            days=data.pop("days"),
            template=data.pop("template", None),
            **data,
        )
        return Response(SimulationSerializer(data).data)
