"""REST: the leader closes their portfolio (staff force-close in the admin)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from portfolios.api import my_portfolio
from portfolios.lifecycle import portfolio_close
from portfolios.serializers import PortfolioCloseSerializer, PortfolioSerializer


class PortfolioCloseView(APIView):
    @extend_schema(request=PortfolioCloseSerializer, responses={202: PortfolioSerializer})
    def post(self, request, pk):
        """Start closing: no new followers or orders; followers are detached
        and the portfolio archived in the background. Calling it again is a no-op."""
        portfolio = my_portfolio(request, pk)
        s = PortfolioCloseSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        portfolio = portfolio_close(portfolio=portfolio, actor=request.user, reason=s.validated_data["reason"])
        portfolio.refresh_from_db()
        return Response(PortfolioSerializer(portfolio).data, status=202)
