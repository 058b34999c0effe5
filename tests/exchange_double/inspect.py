"""Test-only routes (no exchange has them): what the double holds, for a
caller in another process (the exchange benchmark runs the double in its own
process, see ``serve.py``)."""

from __future__ import annotations

from .server import Call, route


@route("GET", "/_double/orders")
def orders_by_client_id(call: Call) -> dict:
    """``{"orders": {client order id: how many orders carry it}}`` over every account."""
    return {"orders": dict(call.state.client_order_ids())}
