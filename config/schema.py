"""The GraphQL schema at /graphql/ (read side: catalog, portfolio detail,
my subscriptions) and its view, which also accepts the REST API's token."""

import logging

import graphene
from django.http import JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphene_django_graphiql_static.views import GraphiQLOfflineView
from rest_framework.exceptions import AuthenticationFailed

from copytrading.auth.authentication import ExpiringTokenAuthentication
from copytrading.outages import OUTAGE_ERRORS, is_outage, service_unavailable_json
from followers.schema import Query as FollowersQuery
from portfolios.schema import Query as PortfoliosQuery


class Query(PortfoliosQuery, FollowersQuery, graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query)
log = logging.getLogger(__name__)


# Queries only (no mutations), so token clients need no CSRF token.
@method_decorator(csrf_exempt, name="dispatch")
class TokenGraphQLView(GraphiQLOfflineView):
    """``Authorization: Token …`` as on the REST API, or the session. GraphiQL's
    page loads its scripts from our static files (graphene-django-graphiql-static),
    not from a CDN: it works offline (docs/decisions.md, "API docs offline")."""

    def dispatch(self, request, *args, **kwargs):
        try:
            authenticated = ExpiringTokenAuthentication().authenticate(request)
            if authenticated is not None:
                request.user = authenticated[0]
            return super().dispatch(request, *args, **kwargs)
        except AuthenticationFailed as error:
            return JsonResponse({"errors": [{"message": str(error.detail)}]}, status=401)
        except OUTAGE_ERRORS as error:
            # Like REST: 503 JSON with Retry-After, never a 500 page or the
            # driver's message in a GraphQL error.
            log.error("GraphQL: service unavailable: %r", error)
            return service_unavailable_json()

    def execute_graphql_request(self, *args, **kwargs):
        result = super().execute_graphql_request(*args, **kwargs)
        # graphql-core turns a resolver's exception into an error entry; an
        # outage is not the query's fault, so it is raised to dispatch().
        for error in getattr(result, "errors", None) or ():
            original = getattr(error, "original_error", None)
            if original is not None and is_outage(original):
                raise original
        return result
