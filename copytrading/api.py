"""REST endpoints of the core: auth, me, wallets, market."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.authtoken.models import Token
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading import ledger, paging, services
from copytrading.errors import DomainError
from copytrading.models import Instrument
from copytrading.serializers import (
    AmountSerializer,
    InstrumentSerializer,
    PriceSerializer,
    PriceSetSerializer,
    RegisterSerializer,
    TokenSerializer,
    WalletSerializer,
)


class RegisterView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=RegisterSerializer, responses={201: dict})
    def post(self, request):
        s = RegisterSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        user = services.user_register(**s.validated_data)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"id": user.pk, "username": user.username, "token": token.key}, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=TokenSerializer, responses={200: dict})
    def post(self, request):
        s = TokenSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        user = authenticate(request, **s.validated_data)
        if user is None:
            raise DomainError("INVALID_CREDENTIALS", "Wrong username or password.", status=400)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class MeView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request):
        user = request.user
        wallet = ledger.main_account_for(user)
        return Response(
            {
                "id": user.pk,
                "username": user.username,
                "email": user.email,
                "is_staff": user.is_staff,
                "main_wallet": WalletSerializer(wallet).data,
            }
        )


class MainWalletView(APIView):
    @extend_schema(responses=WalletSerializer)
    def get(self, request):
        return Response(WalletSerializer(ledger.main_account_for(request.user)).data)


class DepositView(APIView):
    """Paper deposit. Send an ``Idempotency-Key`` header to make retries safe."""

    @extend_schema(request=AmountSerializer, responses={201: WalletSerializer})
    def post(self, request):
        s = AmountSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key")
        _, created = services.wallet_deposit(user=request.user, amount=s.validated_data["amount"], idempotency_key=key)
        wallet = ledger.main_account_for(request.user)
        return Response(
            WalletSerializer(wallet).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class InstrumentListView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(InstrumentSerializer))
    def get(self, request):
        paginator = paging.CursorPagination(ordering=("symbol",))  # unique: the keyset
        rows = paginator.paginate_queryset(Instrument.objects.filter(is_active=True), request, view=self)
        return paginator.get_paginated_response(InstrumentSerializer(rows, many=True).data)


class PriceView(APIView):
    """GET: latest prices (anyone). POST: set a price (staff only)."""

    def get_permissions(self):
        if self.request.method == "POST":
            return [permissions.IsAdminUser()]
        return [permissions.AllowAny()]

    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(PriceSerializer))
    def get(self, request):
        paginator = paging.CursorPagination(ordering=("symbol",))  # unique: the keyset
        rows = paginator.paginate_queryset(
            Instrument.objects.filter(is_active=True).only("symbol", "mark_price", "price_updated_at"),
            request,
            view=self,
        )
        return paginator.get_paginated_response(PriceSerializer(rows, many=True).data)

    @extend_schema(request=PriceSetSerializer, responses=InstrumentSerializer)
    def post(self, request):
        s = PriceSetSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        instrument = Instrument.objects.filter(symbol=s.validated_data["symbol"]).first()
        if instrument is None:
            raise DomainError("UNKNOWN_INSTRUMENT", "There is no such instrument.", field="symbol")
        services.price_set(instrument=instrument, price=s.validated_data["price"])
        return Response(InstrumentSerializer(instrument).data)
