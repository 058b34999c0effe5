"""Linked exchange accounts. They belong to the ``copytrading`` app (imported
by copytrading/models.py, like the auth and notifications rooms' rows): the
exchange venue of the core will trade through them."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ExchangeAccountStatus(models.TextChoices):
    VALID = "valid", "Valid (balances read, no withdrawal permission)"
    AUTH_FAILED = "auth_failed", "The exchange refused the key"
    CAN_WITHDRAW = "can_withdraw", "The key can withdraw"


class ExchangeAccount(models.Model):
    """A user's API key on one ccxt exchange. The key, secret and passphrase
    are only ever stored as Fernet tokens (copytrading/exchanges/crypto.py);
    ``api_key_hint`` (first and last four characters) is what is shown, and
    ``api_key_fingerprint`` (SHA-256 of exchange and key) is what finds the
    same key linked twice. Rows are written only through
    copytrading/exchanges/services.py, which wipes the tokens before a delete."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exchange_accounts")
    exchange = models.CharField(max_length=50)  # a ccxt exchange id
    label = models.CharField(max_length=100)
    api_key_encrypted = models.TextField()
    secret_encrypted = models.TextField()
    passphrase_encrypted = models.TextField(blank=True, default="")  # "" when the exchange needs none
    api_key_hint = models.CharField(max_length=20)
    api_key_fingerprint = models.CharField(max_length=64)
    status = models.CharField(max_length=12, choices=ExchangeAccountStatus.choices)
    # What the exchange says the key may do (null: it does not say), e.g.
    # {"withdraw": false, "futures": true, "spot": true}.
    permissions = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    # When the exchange last answered a validation (the link's, or a re-validation).
    last_validated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "exchange", "api_key_fingerprint"], name="exchange_account_key_once_per_user"
            ),
            # A row either holds all its credentials or none (wiped before delete).
            models.CheckConstraint(
                condition=Q(api_key_encrypted="", secret_encrypted="", passphrase_encrypted="")
                | (~Q(api_key_encrypted="") & ~Q(secret_encrypted="")),
                name="exchange_account_credentials_whole_or_wiped",
            ),
        ]
        indexes = [models.Index(fields=["user", "-id"], name="exchange_account_user_newest")]

    def __str__(self) -> str:
        return f"{self.exchange} {self.api_key_hint} ({self.label})"
