"""What the audit trail records automatically: every model whose saves and
deletes become entries, and which of its fields. The one list to read.

Models are named by label, not imported: the core never imports the apps
above it (DESIGN.md), and the labels are resolved at start-up, when every
model is loaded. A field that stops existing fails the start-up check in
tests/backoffice/test_audit.py.

Changes no save signal sees (a conditional ``UPDATE``, a staff action) are
recorded by their service with ``copytrading.audit.record``; the verbs they use
are in ``VERBS`` below (for the admin's filter; others are still recorded).
"""

from typing import TypedDict


class Audited(TypedDict, total=False):
    fields: list[str]
    exclude: list[str]
    mask: list[str]
    m2m: list[str]


AUDITED: dict[str, Audited] = {
    # A copy's settings (subscription settings on the fly, subscribe); its
    # status moves through pause/resume/unfollow, recorded by their services.
    "followers.Subscription": {
        "fields": [
            "follower",
            "portfolio",
            "sizing_model",
            "multiplier",
            "fixed_notional",
            "risk_factor",
            "leverage_override",
            "copy_margin",
            "copy_spot",
            "slippage_tolerance_pct",
            "agreed_profit_share_pct",
        ],
    },
    "risk.RiskLimits": {
        "fields": [
            "daily_loss_limit_realized",
            "daily_loss_limit_unrealized",
            "margin_call_level_pct",
            "max_drawdown_pct",
            "max_open_positions",
            "max_exposure_pct",
        ],
    },
    # A portfolio's settings and fee model; status moves through close
    # (recorded by portfolios.lifecycle), the webhook secret through its
    # rotation (portfolios.webhooks), the exchange binding in portfolios.exchange.
    "portfolios.Portfolio": {
        "fields": [
            "leader",
            "name",
            "description",
            "mode",
            "min_investment",
            "profit_share_pct",
            "fee_model",
            "is_public",
            "passcode_hash",
            "webhook_secret",
            "x_url",
            "telegram_url",
            "website_url",
        ],
        "mask": ["passcode_hash", "webhook_secret"],
    },
    "portfolios.CopyTemplate": {
        "fields": [
            "portfolio",
            "name",
            "description",
            "sizing_model",
            "multiplier",
            "fixed_notional",
            "risk_factor",
            "leverage_override",
            "copy_margin",
            "copy_spot",
            "slippage_tolerance_pct",
            "daily_loss_realized_pct",
            "daily_loss_unrealized_pct",
            "margin_call_level_pct",
            "max_drawdown_pct",
            "max_open_positions",
            "max_exposure_pct",
        ],
    },
    # Linked exchange accounts: created by the link, deleted by the unlink;
    # validation is an UPDATE, recorded by its service. Credentials: masked.
    "copytrading.ExchangeAccount": {
        "fields": [
            "user",
            "exchange",
            "label",
            "api_key_hint",
            "status",
            "permissions",
            "api_key_encrypted",
            "secret_encrypted",
            "passphrase_encrypted",
            "api_key_fingerprint",
        ],
        "mask": ["api_key_encrypted", "secret_encrypted", "passphrase_encrypted", "api_key_fingerprint"],
    },
    # The live settings record (the kill switch's verbs are recorded by copytrading.live.services).
    "copytrading.LiveSettings": {},
    # Edited in the admin.
    "fees.FeeGroup": {"fields": ["name", "max_profit_share_pct", "platform_cut_pct", "is_default"]},
    "fees.LimitsGroup": {"fields": ["name", "max_followers", "max_profit_share_pct", "is_default"]},
    "fees.LeaderGroupAssignment": {"fields": ["leader", "fee_group", "limits_group", "assigned_by"]},
    # Staff rights and passwords (a login's last_login is not a change):
    # the flags, the groups a user is in, the permissions given to a user or
    # a group.
    "auth.User": {
        "fields": ["username", "email", "password", "is_active", "is_staff", "is_superuser"],
        "mask": ["password"],
        "m2m": ["groups", "user_permissions"],
    },
    "auth.Group": {"fields": ["name"], "m2m": ["permissions"]},
}

# The verbs services record, with what the admin shows for them.
VERBS: dict[str, str] = {
    "create": "create",
    "update": "update",
    "delete": "delete",
    "pause": "pause",
    "resume": "resume",
    "unfollow": "unfollow",
    "close": "close (leader)",
    "force_close": "force-close",
    "replay": "replay event",
    "resolve": "resolve stuck fee",
    "revoke": "revoke token",
    "unlock": "unlock login",
    "acknowledge": "acknowledge job error",
    "validate": "validate exchange account",
    "rotate_webhook_secret": "rotate webhook secret",
    "exchange_bind": "bind to exchange account",
    "exchange_unbind": "unbind from exchange account",
}


def register_all() -> None:
    """Called once at start-up (copytrading/apps.py)."""
    from copytrading.audit import register

    for label, options in AUDITED.items():
        register(label, **options)
