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


class ExchangeOrderStatus(models.TextChoices):
    PENDING = "pending", "Pending (decided, not yet sent)"
    SENT = "sent", "Sent (no answer yet: look it up before resending)"
    ACKNOWLEDGED = "acknowledged", "Acknowledged by the exchange"
    PARTIALLY_FILLED = "partial", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected by the exchange"
    FAILED = "failed", "Failed (gave up after retries)"


# Statuses after which nothing more happens to an order.
EXCHANGE_ORDER_FINAL = (
    ExchangeOrderStatus.FILLED,
    ExchangeOrderStatus.CANCELLED,
    ExchangeOrderStatus.REJECTED,
    ExchangeOrderStatus.FAILED,
)


class ExchangeOrder(models.Model):
    """One order the service sends to an exchange on an account's behalf: the
    outbound half of the exchange venue.

    ``client_order_id`` is deterministic (copytrading.venues.port.PlaceOrder:
    ``ct-<event>-<subscription>``; other callers choose their own ``ct-``
    prefix) and unique: it is what the exchange is sent, and what the
    submitter looks the order up by after an ambiguous timeout, so an order is
    never placed twice. ``order`` is the engine's ``Order`` (status PENDING
    until the outcome is applied); null for orders the engine has no row for
    (the reconciler closing an orphan). The timestamps are the execution log's
    decision → submit → acknowledgement → fill times. Rows are written only
    by copytrading.exchanges (the venue, the submitter, outcomes)."""

    exchange_account = models.ForeignKey(ExchangeAccount, on_delete=models.PROTECT, related_name="orders")
    order = models.OneToOneField(
        "copytrading.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="exchange_order"
    )
    client_order_id = models.CharField(max_length=36, unique=True)
    symbol = models.CharField(max_length=60)  # the ccxt symbol
    side = models.CharField(max_length=4)  # buy / sell
    order_type = models.CharField(max_length=12, default="market")  # ccxt type
    quantity = models.DecimalField(max_digits=30, decimal_places=12)  # in the exchange's amount unit
    price = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)  # limit orders only
    reduce_only = models.BooleanField(default=False)
    status = models.CharField(
        max_length=12, choices=ExchangeOrderStatus.choices, default=ExchangeOrderStatus.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    exchange_order_id = models.CharField(max_length=64, blank=True, default="")
    filled_quantity = models.DecimalField(max_digits=30, decimal_places=12, default=0)
    average_price = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    # What the engine has applied of ``filled_quantity`` (same unit) and what
    # it cost (quantity x price, in the quote): a partial fill is applied as
    # the increment since the last one, at the increment's own price
    # (copytrading.venues.exchange_fills).
    applied_quantity = models.DecimalField(max_digits=30, decimal_places=12, default=0)
    applied_cost = models.DecimalField(max_digits=40, decimal_places=12, default=0)
    # A rejection or failure: a stable code (EXCHANGE_* in copytrading.exchanges)
    # and the exchange's scrubbed message, for the execution log.
    reject_code = models.CharField(max_length=50, blank=True, default="")
    reject_message = models.CharField(max_length=300, blank=True, default="")
    leader_event_id = models.BigIntegerField(null=True, blank=True)
    subscription_id = models.BigIntegerField(null=True, blank=True)
    decided_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)  # the first send
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="exchange_order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(filled_quantity__lte=models.F("quantity")),
                name="exchange_order_filled_within_quantity",
            ),
        ]
        indexes = [
            # The submitter's sweep: orders still to send or to look up.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "sent"]),
                name="exchange_order_to_send",
            ),
            models.Index(fields=["leader_event_id", "subscription_id"], name="exchange_order_by_event"),
            models.Index(fields=["exchange_account", "status"], name="exchange_order_by_account"),
        ]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.side} {self.quantity} {self.symbol} ({self.status})"


class LeaderTradePoll(models.Model):
    """A leader's trading account bound to its linked exchange account, as
    the trade poller sees it: created at bind, deleted at unbind. The poller
    locks this row (``FOR UPDATE SKIP LOCKED``) for the whole poll, so two
    pollers never process one account at once. Trades executed before
    ``bound_at`` are not the portfolio's (its book started flat then)."""

    account = models.OneToOneField("copytrading.Account", on_delete=models.CASCADE, related_name="trade_poll")
    bound_at = models.DateTimeField()
    polled_at = models.DateTimeField(null=True, blank=True)  # the last poll that reached the exchange

    def __str__(self) -> str:
        return f"trade poll of account #{self.account_id}"


class LeaderTradeCursor(models.Model):
    """How far a leader's trades on one symbol have been turned into events:
    the last trade applied (its exchange time and id). Advanced in the same
    transaction as the events it produced, so a crash between the two is
    impossible; the inbox (keyed by the trade id) makes an overlap harmless."""

    poll = models.ForeignKey(LeaderTradePoll, on_delete=models.CASCADE, related_name="cursors")
    symbol = models.CharField(max_length=60)  # the ccxt symbol (Instrument.symbol)
    last_trade_ms = models.BigIntegerField()  # the exchange's timestamp of the last trade applied
    last_trade_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["poll", "symbol"], name="one_trade_cursor_per_symbol")]

    def __str__(self) -> str:
        return f"{self.symbol} after {self.last_trade_id or self.last_trade_ms}"


class ExchangeDrift(models.Model):
    """One difference between the service and an exchange account, from the
    first reconciliation run that saw it until the first that no longer does
    (``resolved_at``). Consecutive runs seeing the same drift (``code`` and
    ``subject``: a symbol, or a client order id) update this row instead of
    reporting again: one risk event, one job-error count, one notification per
    drift. ``repair`` says what the reconciler did about it, once
    (copytrading/exchanges/reconciliation.py)."""

    account = models.ForeignKey("copytrading.Account", on_delete=models.PROTECT, related_name="exchange_drifts")
    exchange_account = models.ForeignKey(ExchangeAccount, on_delete=models.PROTECT, related_name="drifts")
    code = models.CharField(max_length=30)  # copytrading.exchanges.reconcile's codes
    subject = models.CharField(max_length=60)
    symbol = models.CharField(max_length=60)
    subscription_id = models.BigIntegerField(null=True, blank=True)
    service_quantity = models.DecimalField(max_digits=30, decimal_places=12, default=0)
    exchange_quantity = models.DecimalField(max_digits=30, decimal_places=12, default=0)
    detail = models.CharField(max_length=300)
    # "" (report only), or what was done: "closed_in_service", "close_order_sent",
    # "handed_to_submitter"; ``repair_error`` a code when the repair failed.
    repair = models.CharField(max_length=30, blank=True, default="")
    repair_error = models.CharField(max_length=60, blank=True, default="")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    seen_count = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "code", "subject"],
                condition=Q(resolved_at__isnull=True),
                name="exchange_drift_open_once",
            ),
        ]
        indexes = [models.Index(fields=["account", "-id"], name="exchange_drift_by_account")]

    def __str__(self) -> str:
        return f"{self.code} {self.subject} account={self.account_id}"
