"""The GraphQL schema at /graphql/ (read side: catalog, portfolio detail,
my subscriptions) and its view, which also accepts the REST API's token."""

import graphene
from django.http import JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphene_django.views import GraphQLView
from rest_framework.exceptions import AuthenticationFailed

from copytrading.auth.authentication import ExpiringTokenAuthentication
from followers.schema import Query as FollowersQuery
from portfolios.schema import Query as PortfoliosQuery


class Query(PortfoliosQuery, FollowersQuery, graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query)


# Queries only (no mutations), so token clients need no CSRF token.
@method_decorator(csrf_exempt, name="dispatch")
class TokenGraphQLView(GraphQLView):
    """``Authorization: Token …`` as on the REST API, or the session."""

    def dispatch(self, request, *args, **kwargs):
        try:
            authenticated = ExpiringTokenAuthentication().authenticate(request)
        except AuthenticationFailed as error:
            return JsonResponse({"errors": [{"message": str(error.detail)}]}, status=401)
        if authenticated is not None:
            request.user = authenticated[0]
        return super().dispatch(request, *args, **kwargs)
