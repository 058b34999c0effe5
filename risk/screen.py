"""The watchdog's screening statement (PostgreSQL): one round trip per chunk.

Valuing 5,000 wallets in Python means fetching and converting tens of
thousands of numerics and running the rules 5,000 times; almost every tick
finds nothing to do. So PostgreSQL, whose numerics are exact, values every
wallet of the chunk, stores the peak equities that moved, and returns only
the subscriptions that may need action:

- those whose state is new, or that the watchdog paused and someone resumed
  (their state needs more than a peak: the Python path handles them);
- active ones for which some rule's condition holds;
- paused ones (watched for their open exposure) over their unrealized daily
  loss limit: the one rule that acts on a paused copy (it closes everything).

Unrealized PnL is the margin positions' plus the spot holdings' (at the mark
less their cost basis); realized PnL today is the ledger's REALIZED_PNL plus
the day's spot sells (``Order.realized_pnl`` of orders without a position).

The conditions are those of ``risk.rules`` written in SQL with the same
exact arithmetic, so the screen lets every breach through; the candidates
are then judged again by ``rules.evaluate``, which alone decides. The
PostgreSQL tests of every rule at, just below and just above its threshold
run through this screen.
"""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import connection

from copytrading.models import (
    Account,
    Holding,
    Instrument,
    Order,
    Position,
    PositionStatus,
    Product,
    Transfer,
    TransferKind,
)
from risk.hooks import subscription_hooks
from risk.models import RiskLimits, RiskState
from risk.selectors import FLOW_KINDS

_SQL = """
WITH subs AS MATERIALIZED (
    SELECT * FROM ({subs}) AS watched(subscription_id, account_id, active)
),
-- The wallet, its state and limits are read by one index lookup per row
-- (LATERAL; LIMIT 1 keeps the planner from flattening it into a join): the
-- plan must not depend on statistics, which lag behind a table the first
-- tick has just filled and would then turn a join into a quadratic scan.
base AS (
    SELECT s.subscription_id, s.account_id, s.active,
           a.balance + coalesce(p.pnl, 0) + coalesce(h.value, 0) AS equity,
           coalesce(p.margin, 0) AS margin, coalesce(p.pnl, 0) + coalesce(h.pnl, 0) AS pnl,
           st.subscription_id IS NULL AS fresh, coalesce(st.paused_by_rule, '') AS paused_by,
           st.peak_equity AS old_peak, st.peak_flows AS old_flows,
           lim.daily_loss_limit_realized AS loss_realized, lim.daily_loss_limit_unrealized AS loss_unrealized,
           coalesce(lim.margin_call_level_pct, %(margin_level)s) AS margin_level, lim.max_drawdown_pct AS drawdown
    FROM subs s
    CROSS JOIN LATERAL (SELECT balance FROM {account} WHERE id = s.account_id LIMIT 1) a
    CROSS JOIN LATERAL (
        SELECT sum(p.margin) AS margin,
               sum(greatest(CASE WHEN p.side = 'long' THEN (i.mark_price - p.entry_price) * p.quantity
                                 ELSE (p.entry_price - i.mark_price) * p.quantity END,
                            -p.margin)) AS pnl
        FROM {position} p JOIN {instrument} i ON i.id = p.instrument_id
        WHERE p.account_id = s.account_id AND p.status = %(open)s
    ) p
    CROSS JOIN LATERAL (
        -- Spot holdings at the mark (at cost without a priced pair: no PnL).
        SELECT sum(coalesce(h.quantity * m.mark, h.cost_basis)) AS value,
               sum(coalesce(h.quantity * m.mark - h.cost_basis, 0)) AS pnl
        FROM {holding} h
        LEFT JOIN LATERAL (
            SELECT i.mark_price AS mark FROM {instrument} i
            WHERE i.product = %(spot)s AND i.quote = %(quote)s AND i.base = h.asset AND i.mark_price IS NOT NULL
            ORDER BY i.id LIMIT 1
        ) m ON true
        WHERE h.account_id = s.account_id AND h.quantity > 0
    ) h
    LEFT JOIN LATERAL (
        SELECT subscription_id, peak_equity, peak_flows, paused_by_rule FROM {state}
        WHERE subscription_id = s.subscription_id LIMIT 1
    ) st ON true
    LEFT JOIN LATERAL (
        SELECT daily_loss_limit_realized, daily_loss_limit_unrealized, margin_call_level_pct, max_drawdown_pct
        FROM {limits} WHERE subscription_id = s.subscription_id LIMIT 1
    ) lim ON true
),
-- The ledger only for the wallets whose limits need it, by constant arrays:
-- a per-row lookup would be planned for the typical debit account, the
-- venue's, with half the table behind it, and become a sequential scan.
ledger AS MATERIALIZED (
    SELECT account_id, sum(signed) FILTER (WHERE kind = %(pnl)s) AS realized,
           sum(signed) FILTER (WHERE kind <> %(pnl)s) AS flows
    FROM (
        SELECT credit_id AS account_id, amount AS signed, kind FROM {transfer}
        WHERE credit_id = ANY(%(ledger_ids)s::bigint[])
          AND (kind = ANY(%(flows)s) OR (kind = %(pnl)s AND created_at >= %(day)s))
        UNION ALL
        SELECT debit_id, -amount, kind FROM {transfer}
        WHERE debit_id = ANY(%(ledger_ids)s::bigint[])
          AND (kind = ANY(%(flows)s) OR (kind = %(pnl)s AND created_at >= %(day)s))
    ) moves
    GROUP BY account_id
),
-- The day's spot sells of the same wallets, by the partial index
-- spot_realization_by_day (a spot order has no position).
spot AS MATERIALIZED (
    SELECT account_id, sum(realized_pnl) AS realized FROM {order}
    WHERE account_id = ANY(%(ledger_ids)s::bigint[]) AND realized_pnl IS NOT NULL AND position_id IS NULL
      AND filled_at >= %(day)s
    GROUP BY account_id
),
judged AS (
    SELECT b.*, coalesce(l.realized, 0) + coalesce(sp.realized, 0) AS realized, coalesce(l.flows, 0) AS flows,
           -- rules.next_peak, tracked under a drawdown stop only: the peak
           -- moved by the flows since, never below the equity, rounded up to
           -- 8 places.
           CASE WHEN b.drawdown IS NOT NULL THEN
               ceil(greatest(b.old_peak + (coalesce(l.flows, 0) - b.old_flows), b.equity) * 100000000) / 100000000
           END AS peak
    FROM base b LEFT JOIN ledger l ON l.account_id = b.account_id LEFT JOIN spot sp ON sp.account_id = b.account_id
),
stored AS (
    UPDATE {state} AS t SET peak_equity = j.peak, peak_flows = j.flows
    FROM judged j
    WHERE t.subscription_id = j.subscription_id AND j.drawdown IS NOT NULL AND NOT j.fresh AND j.paused_by = ''
      AND (j.old_peak IS DISTINCT FROM j.peak OR j.old_flows <> j.flows)
      -- Only the row as read: an overlapping tick that stored a newer peak
      -- meanwhile wins (PostgreSQL re-checks this on the updated row).
      AND t.peak_equity IS NOT DISTINCT FROM j.old_peak AND t.peak_flows = j.old_flows
    RETURNING t.subscription_id
)
SELECT count(*),
       array_agg(subscription_id) FILTER (WHERE
           fresh OR (active AND paused_by <> '')
           OR (loss_unrealized IS NOT NULL AND -pnl >= loss_unrealized)
           OR (active AND (
               (loss_realized IS NOT NULL AND -realized >= loss_realized)
               OR (margin > 0 AND equity * 100 <= margin_level * margin)
               OR (drawdown IS NOT NULL AND peak > 0 AND (peak - equity) * 100 >= drawdown * peak))))
FROM judged
"""


# The copy wallets of the range whose limits read the ledger (a realized
# daily loss limit, or a drawdown stop for the flows); new subscriptions, not
# in it yet, are judged in Python.
_LEDGER_ACCOUNTS = """
SELECT st.copy_account_id FROM {limits} lim
CROSS JOIN LATERAL (SELECT copy_account_id FROM {state} WHERE subscription_id = lim.subscription_id LIMIT 1) st
WHERE lim.subscription_id BETWEEN %s AND %s
  AND (lim.daily_loss_limit_realized IS NOT NULL OR lim.max_drawdown_pct IS NOT NULL)
"""


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def screen_range(
    first_id: int, last_id: int, *, day_start: datetime, margin_call_default: Decimal
) -> tuple[int, list[int]]:
    """Screen the watched subscriptions with ids in [first_id, last_id]:
    returns how many there are and the ids that need a closer look, having
    stored the new peak equity of every other one. Runs in the chunk's
    transaction (PostgreSQL only)."""
    subs_sql, subs_params = subscription_hooks().watched_subscriptions_sql(first_id, last_id)
    # The embedded SELECT's positional parameters become named ones.
    names = [f"subs_{n}" for n in range(len(subs_params))]
    subs_sql = subs_sql % tuple(f"%({name})s" for name in names)
    sql = _SQL.format(
        subs=subs_sql,
        position=_table(Position),
        instrument=_table(Instrument),
        holding=_table(Holding),
        order=_table(Order),
        transfer=_table(Transfer),
        account=_table(Account),
        state=_table(RiskState),
        limits=_table(RiskLimits),
    )
    params = {
        "open": PositionStatus.OPEN,
        "margin_level": margin_call_default,
        "spot": Product.SPOT,
        "quote": settings.PRIMARY_CURRENCY,
        "pnl": TransferKind.REALIZED_PNL,
        "flows": list(FLOW_KINDS),
        "day": day_start,
        **dict(zip(names, subs_params, strict=True)),
    }
    with connection.cursor() as cursor:
        cursor.execute(_LEDGER_ACCOUNTS.format(state=_table(RiskState), limits=_table(RiskLimits)), [first_id, last_id])
        params["ledger_ids"] = "{" + ",".join(str(row[0]) for row in cursor.fetchall()) + "}"
        # JIT compilation costs more than the whole statement runs.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        count, candidates = cursor.fetchone()
    return count, sorted(candidates or [])
