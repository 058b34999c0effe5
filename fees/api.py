"""REST endpoints of the fees app that need no portfolio ownership check:
every figure is filtered by the requesting user (as the accrual's leader).
Per-portfolio views (and ``fees/earnings``, which may name a portfolio) live
in portfolios/fees_api.py, per-subscription ones in followers/fees_api.py
(fees sits below both apps and imports neither)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from fees import selectors
from fees.serializers import CapsSerializer


class MyCapsView(APIView):
    """The caller's caps as a leader (their groups, or the defaults)."""

    @extend_schema(responses=CapsSerializer)
    def get(self, request):
        return Response(CapsSerializer(selectors.leader_caps(request.user.pk)).data)
