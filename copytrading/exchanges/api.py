"""REST endpoints of linked exchange accounts: link, list, read, re-validate,
delete; owner-only (another user's id is 404). No answer ever carries a
secret: the key is shown masked (``abcd…wxyz``), the secret and passphrase
not at all."""

from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading import paging
from copytrading.exchanges import selectors, services
from copytrading.exchanges.accounts import supported_exchanges
from copytrading.exchanges.models import ExchangeAccount
from copytrading.openapi import ErrorSerializer

# 502: the exchange answered with an error this service does not expect.
EXCHANGE_ERRORS = {502: OpenApiResponse(ErrorSerializer, description="EXCHANGE_ERROR")}


class ExchangeAccountSerializer(serializers.ModelSerializer):
    api_key = serializers.CharField(source="api_key_hint", help_text="the key masked: first and last 4 characters")
    has_passphrase = serializers.SerializerMethodField()

    class Meta:
        model = ExchangeAccount
        fields = [
            "id",
            "exchange",
            "label",
            "api_key",
            "has_passphrase",
            "status",
            "permissions",
            "created_at",
            "last_validated_at",
        ]

    def get_has_passphrase(self, account: ExchangeAccount) -> bool:
        return account.passphrase_encrypted != ""


class ExchangeAccountLinkSerializer(serializers.Serializer):
    exchange = serializers.ChoiceField(
        choices=[], help_text="a ccxt exchange id whose keys are an API key, a secret and perhaps a passphrase"
    )
    label = serializers.CharField(max_length=100)
    api_key = serializers.CharField(min_length=8, max_length=512, trim_whitespace=True)
    secret = serializers.CharField(min_length=8, max_length=4096, trim_whitespace=True, write_only=True)
    passphrase = serializers.CharField(
        max_length=256,
        required=False,
        default="",
        allow_blank=True,
        trim_whitespace=False,
        write_only=True,
        help_text="only for exchanges whose keys have one (e.g. okx, kucoin, bitget)",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["exchange"].choices = supported_exchanges()


class ExchangeAccountListView(APIView):
    """The user's linked exchange accounts, newest first."""

    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(ExchangeAccountSerializer))
    def get(self, request):
        rows = selectors.exchange_accounts_of(request.user)
        return paging.queryset_page(rows, ExchangeAccountSerializer, request, self)

    @extend_schema(request=ExchangeAccountLinkSerializer, responses={201: ExchangeAccountSerializer, **EXCHANGE_ERRORS})
    @sensitive_variables("s")
    def post(self, request):
        """Link a key: the exchange is asked for the balances (and, where it
        reports them, the key's permissions) before anything is stored."""
        s = ExchangeAccountLinkSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        account = services.exchange_account_link(user=request.user, **s.validated_data)
        return Response(ExchangeAccountSerializer(account).data, status=status.HTTP_201_CREATED)


class ExchangeAccountDetailView(APIView):
    @extend_schema(responses=ExchangeAccountSerializer)
    def get(self, request, pk):
        return Response(ExchangeAccountSerializer(selectors.exchange_account_of(request.user, pk)).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk):
        """Unlink: the stored credentials are overwritten, then the row deleted."""
        services.exchange_account_delete(user=request.user, account_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExchangeAccountValidateView(APIView):
    @extend_schema(request=None, responses={200: ExchangeAccountSerializer, **EXCHANGE_ERRORS})
    def post(self, request, pk):
        """Ask the exchange again; the answer records ``status`` (valid,
        auth_failed, can_withdraw), ``permissions`` and ``last_validated_at``.
        An exchange that does not answer changes nothing (503)."""
        account = services.exchange_account_validate(user=request.user, account_id=pk)
        return Response(ExchangeAccountSerializer(account).data)
