"""The signal webhook and its signing secret (see docs/api.md, "Signal webhook").

The webhook has no session or token: the HMAC signature is its
authentication, so DRF runs no authentication class (and hence no CSRF check)
and the view verifies the signature over the raw body before parsing it.
"""

import json
import time

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading.errors import DomainError, NotFound
from copytrading.parsers import DETAIL as INVALID_TEXT_DETAIL
from copytrading.parsers import invalid_text_path
from copytrading.serializers import MoneyField
from copytrading.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_verify
from portfolios.models import Portfolio
from portfolios.webhooks import MARKET, SIGNAL_TYPES, portfolio_signal_receive, portfolio_webhook_secret_rotate

# Far above any order signal; bounds the HMAC work an anonymous caller can ask for.
MAX_BODY_BYTES = 16 * 1024


class SignalSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=200, help_text="The sender's id of this signal; a repeat is ignored.")
    symbol = serializers.CharField(max_length=40)
    side = serializers.ChoiceField(
        choices=[
            ("buy", "buy: go long or reduce a short (spot: buy the asset)"),
            ("sell", "sell: go short or reduce a long (spot: sell the asset)"),
        ]
    )
    quantity = MoneyField()
    leverage = serializers.IntegerField(min_value=1, max_value=1000, default=1)
    type = serializers.ChoiceField(choices=SIGNAL_TYPES, default=MARKET)
    price = MoneyField(required=False, help_text="The limit price (type limit); optional for not-copied types.")


class WebhookSecretSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    secret = serializers.CharField(help_text="Shown only now; rotate to get a new one.")
    url = serializers.CharField()
    timestamp_header = serializers.CharField()
    signature_header = serializers.CharField()


class WebhookSecretView(APIView):
    @extend_schema(request=None, responses={201: WebhookSecretSerializer})
    def post(self, request, pk):
        # Object-level ownership: another leader's portfolio is simply not found.
        portfolio = get_object_or_404(Portfolio, pk=pk, leader=request.user)
        secret = portfolio_webhook_secret_rotate(portfolio=portfolio)
        body = {
            "portfolio": portfolio.pk,
            "secret": secret,
            "url": reverse("webhook-signals", kwargs={"portfolio_id": portfolio.pk}),
            "timestamp_header": TIMESTAMP_HEADER,
            "signature_header": SIGNATURE_HEADER,
        }
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


def _parse(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        data = None
    if not isinstance(data, dict):
        raise DomainError("INVALID_JSON", "The body must be a JSON object.")
    path = invalid_text_path(data)
    if path is not None:  # the payload is stored as jsonb, which refuses NUL
        raise DomainError("INVALID_CHARACTERS", INVALID_TEXT_DETAIL, field=path or None)
    return data


class SignalWebhookView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        auth=[],
        request=SignalSerializer,
        parameters=[
            OpenApiParameter(TIMESTAMP_HEADER, str, OpenApiParameter.HEADER, required=True),
            OpenApiParameter(SIGNATURE_HEADER, str, OpenApiParameter.HEADER, required=True),
        ],
        responses={
            201: inline_serializer(
                "SignalExecuted",
                {
                    "duplicate": serializers.BooleanField(),
                    "id": serializers.CharField(),
                    "status": serializers.CharField(),
                    "events": serializers.ListField(child=serializers.DictField()),
                },
            ),
            200: inline_serializer(
                "SignalDuplicate",
                {
                    "duplicate": serializers.BooleanField(),
                    "id": serializers.CharField(),
                    "status": serializers.CharField(),
                    "result": serializers.DictField(),
                },
            ),
        },
    )
    def post(self, request, portfolio_id):
        # The raw bytes, exactly as signed: read before anything parses them.
        body = request.body
        portfolio = Portfolio.objects.filter(pk=portfolio_id).exclude(webhook_secret="").first()
        if portfolio is None:
            raise NotFound("portfolio")
        if len(body) > MAX_BODY_BYTES:
            raise DomainError("PAYLOAD_TOO_LARGE", f"The body must be at most {MAX_BODY_BYTES} bytes.", status=413)
        signature_verify(
            secret=portfolio.webhook_secret,
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            signature=request.headers.get(SIGNATURE_HEADER),
            body=body,
            now=time.time(),
        )
        payload = _parse(body)
        s = SignalSerializer(data=payload)
        s.is_valid(raise_exception=True)
        data = s.validated_data
        outcome = portfolio_signal_receive(
            portfolio=portfolio,
            external_id=data["id"],
            payload=payload,
            symbol=data["symbol"],
            side=data["side"],
            quantity=data["quantity"],
            leverage=data["leverage"],
            order_type=data["type"],
            price=data.get("price"),
        )
        message = outcome.message
        if outcome.duplicate:
            body = {"duplicate": True, "id": message.external_id, "status": message.status, "result": message.result}
            return Response(body, status=status.HTTP_200_OK)
        if outcome.error is not None:
            # Returned, not raised: the inbox row recording the refusal is
            # already committed and stays.
            error = outcome.error
            return Response({"code": error.code, "detail": error.detail, "field": error.field}, status=error.status)
        events = [{"id": e.pk, "seq": e.seq, "kind": e.kind, "payload": e.payload} for e in outcome.events]
        body = {"duplicate": False, "id": message.external_id, "status": message.status, "events": events}
        if outcome.exchange_order is not None:  # sent to the leader's exchange account: its fill comes later
            body["exchange_order"] = outcome.exchange_order
            return Response(body, status=status.HTTP_202_ACCEPTED)
        return Response(body, status=status.HTTP_201_CREATED)
