"""REST endpoints of the auth room: register, token (login), logout, logout
everywhere, password change, me."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from copytrading import ledger, services
from copytrading.auth.client import client_address
from copytrading.auth.models import AuthToken
from copytrading.auth.serializers import (
    LogoutAllResponseSerializer,
    MeSerializer,
    PasswordChangeSerializer,
    RegisterResponseSerializer,
    TokenResponseSerializer,
)
from copytrading.auth.services import (
    auth_token_create,
    auth_token_revoke,
    auth_tokens_revoke_all,
    registration_count,
    user_password_change,
)
from copytrading.errors import DomainError
from copytrading.serializers import RegisterSerializer, TokenSerializer


class RegistrationThrottle(BaseThrottle):
    """Registrations per client address, counted in the database like logins
    (429 REGISTRATION_THROTTLED with Retry-After)."""

    def allow_request(self, request, view) -> bool:
        registration_count(address=client_address(request))
        return True


def _token_body(token: AuthToken, key: str) -> dict:
    return {"token": key, "expires_at": token.expires_at}


class RegisterView(APIView):
    permission_classes = [permissions.AllowAny]
    throttle_classes = [RegistrationThrottle]

    @extend_schema(request=RegisterSerializer, responses={201: RegisterResponseSerializer})
    def post(self, request):
        s = RegisterSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        user = services.user_register(**s.validated_data)
        token, key = auth_token_create(user=user)
        body = RegisterResponseSerializer({"id": user.pk, "username": user.username, **_token_body(token, key)}).data
        return Response(body, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    """Log in: every call returns a new token (lifetime AUTH_TOKEN_LIFETIME_SECONDS)."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(request=TokenSerializer, responses={200: TokenResponseSerializer})
    def post(self, request):
        s = TokenSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        user = authenticate(request, **s.validated_data)
        if user is None:
            raise DomainError("INVALID_CREDENTIALS", "Wrong username or password.", status=400)
        return Response(TokenResponseSerializer(_token_body(*auth_token_create(user=user))).data)


class LogoutView(APIView):
    """Revoke the token this request is authenticated with."""

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        if not isinstance(request.auth, AuthToken):
            raise DomainError("NOT_TOKEN_AUTHENTICATED", "This request did not use a token.", status=400)
        auth_token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(APIView):
    """Revoke every token of the caller (log out everywhere)."""

    @extend_schema(request=None, responses={200: LogoutAllResponseSerializer})
    def post(self, request):
        return Response(LogoutAllResponseSerializer({"revoked": auth_tokens_revoke_all(user=request.user)}).data)


class PasswordView(APIView):
    """Change the password: every token of the user is revoked; the response
    carries a new one."""

    @extend_schema(request=PasswordChangeSerializer, responses={200: TokenResponseSerializer})
    def post(self, request):
        s = PasswordChangeSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        token, key = user_password_change(user=request.user, address=client_address(request), **s.validated_data)
        return Response(TokenResponseSerializer(_token_body(token, key)).data)


class MeView(APIView):
    @extend_schema(responses={200: MeSerializer})
    def get(self, request):
        user = request.user
        me = {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "is_staff": user.is_staff,
            "main_wallet": ledger.main_account_for(user),
        }
        return Response(MeSerializer(me).data)
