"""REST endpoints of the core: wallets, market (auth and me: copytrading/auth/api.py)."""

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading import ledger, paging, services
from copytrading.errors import DomainError
from copytrading.idempotency import idempotent
from copytrading.models import Instrument
from copytrading.serializers import (
    AmountSerializer,
    InstrumentSerializer,
    PriceSerializer,
    PriceSetSerializer,
    WalletSerializer,
)


class MainWalletView(APIView):
    @extend_schema(responses=WalletSerializer)
    def get(self, request):
        return Response(WalletSerializer(ledger.main_account_for(request.user)).data)


class DepositView(APIView):
    """Paper deposit. Send an ``Idempotency-Key`` header to make retries safe."""

    @extend_schema(request=AmountSerializer, responses={201: WalletSerializer})
    @idempotent
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
        # unique: the keyset
        return paging.queryset_page(
            Instrument.objects.filter(is_active=True), InstrumentSerializer, request, self, ordering=("symbol",)
        )


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
