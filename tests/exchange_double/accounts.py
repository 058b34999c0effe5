"""Account-level routes for linked exchange accounts: the key's permissions.

``GET /sapi/v1/account/apiRestrictions`` answers the signing account's
``Account.permissions`` (Binance's flags: ``enableWithdrawals``,
``enableReading``, ``enableFutures``, ...) plus its creation time, as Binance
does for every key (spot and futures keys alike)."""

from __future__ import annotations

from .server import Call, route

KEY_CREATED_MS = 1700000000000


@route("GET", "/sapi/v1/account/apiRestrictions", signed=True)
def api_restrictions(call: Call) -> dict:
    account = call.account
    assert account is not None  # signed route
    return {**account.permissions, "createTime": KEY_CREATED_MS}
