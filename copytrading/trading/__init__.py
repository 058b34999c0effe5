"""Single-account trading on the paper venue: a leader's own orders (market and
resting limit), TP/SL and leverage edits, and a follower's manual close.
Mirrors go through the propagation engine; fills of resting orders and TP/SL
and liquidation triggers through the price-driven matching (copytrading.matching).

- ``common``: the ``Executed`` result, input validators, shared row locks
- ``market``: market orders (margin and spot) and position closes
- ``limits``: resting limit orders (place, re-price, cancel)
- ``edits``: TP/SL and leverage of an open position
"""

from copytrading.trading.common import (  # noqa: F401 - re-exported: the public API of trading
    Executed,
    instrument_for_trading,
    validate_leverage,
    validate_price,
    validate_quantity,
    validate_side,
)
from copytrading.trading.edits import UNCHANGED, position_leverage_set, position_tpsl_set, validate_tpsl  # noqa: F401
from copytrading.trading.limits import limit_order_cancel, limit_order_place, limit_order_reprice  # noqa: F401
from copytrading.trading.market import (  # noqa: F401
    margin_external_fill,
    margin_market_order,
    position_close,
    spot_external_fill,
    spot_market_order,
)
