"""REST endpoints of the fees app that need no portfolio ownership check:
every figure is filtered by the requesting user (as the accrual's leader).
Per-portfolio views live in portfolios/fees_api.py, per-subscription ones in
followers/fees_api.py (fees sits below both apps and imports neither)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading.errors import DomainError
from fees import selectors
from fees.serializers import CapsSerializer, EarningsSerializer


class MyCapsView(APIView):
    """The caller's caps as a leader (their groups, or the defaults)."""

    @extend_schema(responses=CapsSerializer)
    def get(self, request):
        return Response(CapsSerializer(selectors.leader_caps(request.user.pk)).data)


class MyEarningsView(APIView):
    """Profit share the caller earned as a leader, over all their portfolios
    or one (``?portfolio=ID``; another leader's portfolio shows nothing)."""

    @extend_schema(parameters=[OpenApiParameter("portfolio", int, required=False)], responses=EarningsSerializer)
    def get(self, request):
        raw = request.query_params.get("portfolio")
        portfolio_id = None
        if raw not in (None, ""):
            if not raw.isdigit():
                raise DomainError("INVALID", "portfolio must be a portfolio id.", field="portfolio")
            portfolio_id = int(raw)
        body = selectors.leader_earnings(leader_id=request.user.pk, portfolio_id=portfolio_id)
        return Response(EarningsSerializer(body).data)
