from django.utils import timezone
from django.utils.crypto import constant_time_compare

from copytrading.auth.models import AuthToken
from copytrading.auth.services import hash_key


def auth_token_find(*, key: str) -> AuthToken | None:
    """The live token with this key: not expired, not revoked, its user
    active and its password unchanged since the token was made."""
    token = (
        AuthToken.objects.select_related("user")
        .filter(key_hash=hash_key(key), revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    if not constant_time_compare(token.session_hash, token.user.get_session_auth_hash()):
        return None
    return token
