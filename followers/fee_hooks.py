"""Profit share on closed mirrors and spot sells: the close listener
registered with the venue (followers/apps.py), which turns the venue's closed
positions and realizing spot sells into ``fees.services.fees_accrue`` calls.

The venue calls it once per batch of fills, in the transaction that closed
the positions or sold the holdings. Only COPY wallets are charged: a position
or a sale in any other account (a leader's own trading account) has no
subscription and is ignored. Cost: nothing for a batch without a profitable
close or sale, otherwise one query mapping copy wallets to subscriptions and
portfolios, plus ``fees_accrue``'s constant number, plus ``notify``'s two for
the followers' "closed in profit" notifications.
"""

from copytrading.models import AccountKind
from copytrading.notifications.services import Note, notify
from copytrading.venue import ClosedPosition, SpotSale, register_close_listener
from fees.services import ClosedMirror, fees_accrue
from followers.models import Subscription, profit_share_due


def accrue_closed_mirrors(closed: list[ClosedPosition], sold: list[SpotSale] = ()) -> None:
    # A loss or break-even never pays, under either fee model (the
    # high-water mark reads the subscription's losses from its positions and
    # spot orders).
    profitable = [c for c in [*closed, *sold] if c.realized_pnl > 0]
    if not profitable:
        return
    rows = Subscription.objects.filter(
        copy_account_id__any=sorted({c.account_id for c in profitable}), copy_account__kind=AccountKind.COPY
    ).values_list(
        "copy_account_id", "pk", "portfolio_id", "portfolio__leader_id", "portfolio__profit_share_pct",
        "portfolio__fee_model", "agreed_profit_share_pct", "follower_id", "portfolio__name",
    )  # fmt: skip
    by_account = {row[0]: row[1:] for row in rows}
    closes, notes = [], []
    for c in profitable:
        if c.account_id not in by_account:
            continue  # not a copy wallet: the leader's own close or sale
        subscription_id, portfolio_id, leader_id, share_pct, fee_model, agreed_pct, follower_id, name = by_account[
            c.account_id
        ]
        share_pct = profit_share_due(share_pct, agreed_pct)  # a later raise does not apply to this copy
        is_sale = isinstance(c, SpotSale)
        closes.append(
            ClosedMirror(
                position_id=None if is_sale else c.position_id,
                order_id=c.order_id if is_sale else None,
                subscription_id=subscription_id,
                portfolio_id=portfolio_id,
                copy_account_id=c.account_id,
                leader_user_id=leader_id,
                realized_pnl=c.realized_pnl,
                profit_share_pct=share_pct,
                fee_model=fee_model,
            )
        )
        # The follower's "closed in profit", from the same rows (no extra read).
        source = f"sold:{c.order_id}" if is_sale else f"closed:{c.position_id}"
        data = {
            "subscription_id": subscription_id,
            "portfolio_id": portfolio_id,
            "portfolio": name,
            "pnl": str(c.realized_pnl),
            "position_id": None if is_sale else c.position_id,
            "order_id": c.order_id if is_sale else None,
        }
        notes.append(Note(follower_id, "closed_in_profit", source, data))
    if closes:
        fees_accrue(closes=closes, returning=False)
    notify(notes)


def register() -> None:
    register_close_listener(accrue_closed_mirrors)
