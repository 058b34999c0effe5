"""``Authorization: Token <key>`` against AuthToken (hashed, expiring, revocable)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from copytrading.auth.selectors import auth_token_find
from copytrading.observability.middleware import user_bind


class ExpiringTokenAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid token header: `Token <key>`.")
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise AuthenticationFailed("Invalid token header: `Token <key>`.") from None
        token = auth_token_find(key=key)
        if token is None:
            raise AuthenticationFailed("The token is invalid, expired or revoked.")
        user_bind(token.user_id)  # on the request's log lines from here on
        return token.user, token

    def authenticate_header(self, request) -> str:
        # makes DRF answer 401 (not 403) to a request without credentials
        return self.keyword


class ExpiringTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of ExpiringTokenAuthentication (the same
    name and shape drf-spectacular gives DRF's own token scheme)."""

    target_class = ExpiringTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Token from POST /api/v1/auth/token, with the prefix "Token": `Authorization: Token <key>`',
        }
