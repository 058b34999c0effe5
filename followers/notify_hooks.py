"""The followers' notifications: subscribing and unsubscribing (both
sides), copy-wallet withdrawals, and the fan-out's copy results (registered
with the propagation engine in apps.py, the way the target source is).

Every note is keyed by its source (a subscription, a transfer, an execution
= event and subscription), so a replayed trigger stores nothing new."""

from decimal import Decimal

from copytrading import decisions
from copytrading.models import LeaderEvent
from copytrading.notifications.services import Note, notify, trade_copied_enabled
from copytrading.propagation import ExecutionOutcome, register_execution_listener
from followers.models import Subscription

# A copy refused for money, or failed: the follower must act (SPEC §8,
# "critical copy error"). Minor skips (no holding to sell...) are not notified.
CRITICAL_REJECTIONS = frozenset({decisions.INSUFFICIENT_MARGIN, decisions.INSUFFICIENT_FUNDS})

REASONS = {
    decisions.INSUFFICIENT_MARGIN: "not enough free margin in your copy wallet",
    decisions.INSUFFICIENT_FUNDS: "not enough funds in your copy wallet",
    decisions.INTERNAL_ERROR: "an internal error (our staff has been alerted)",
}


def _kind_of(o: ExecutionOutcome, copied_too: bool) -> str | None:
    if o.outcome == decisions.FAILED or (o.outcome == decisions.REJECTED and o.reason_code in CRITICAL_REJECTIONS):
        return "copy_error"
    if copied_too and o.outcome == decisions.COPIED:
        return "trade_copied"
    return None


def notify_executions(event: LeaderEvent, outcomes: list[ExecutionOutcome]) -> None:
    """In the chunk's transaction: nothing at all (no query) when no result
    concerns anyone, else one query for the recipients and ``notify``'s two."""
    copied_too = trade_copied_enabled()
    kinds = [(o, k) for o in outcomes if (k := _kind_of(o, copied_too)) is not None]
    if not kinds:
        return
    rows = Subscription.objects.filter(pk__any=sorted({o.subscription_id for o, _ in kinds})).values_list(
        "pk", "follower_id", "portfolio__name"
    )
    who = {pk: (follower_id, name) for pk, follower_id, name in rows}
    notes = []
    for o, kind in kinds:
        if o.subscription_id not in who:
            continue
        follower_id, name = who[o.subscription_id]
        data = {
            "event_id": event.pk,
            "portfolio_id": event.portfolio_id,
            "portfolio": name,
            "subscription_id": o.subscription_id,
            "outcome": o.outcome,
            "reason_code": o.reason_code,
            "reason": REASONS.get(o.reason_code, o.reason_code),
        }
        notes.append(Note(follower_id, kind, f"exec:{event.pk}:{o.subscription_id}", data))
    notify(notes)


def subscription_started(sub: Subscription, portfolio_name: str, leader_id: int) -> None:
    data = {
        "subscription_id": sub.pk,
        "portfolio_id": sub.portfolio_id,
        "portfolio": portfolio_name,
        "amount": str(sub.invested),
    }
    notify(
        [
            Note(sub.follower_id, "subscribed", f"subscribed:{sub.pk}", data),
            Note(leader_id, "new_subscriber", f"new_subscriber:{sub.pk}", {**data, "amount": None}),
        ]
    )


def subscription_ended(sub: Subscription, returned: Decimal) -> None:
    name, leader_id = Subscription.objects.filter(pk=sub.pk).values_list("portfolio__name", "portfolio__leader_id")[0]
    data = {"subscription_id": sub.pk, "portfolio_id": sub.portfolio_id, "portfolio": name}
    notify(
        [
            Note(sub.follower_id, "unsubscribed", f"unsubscribed:{sub.pk}", {**data, "returned": str(returned)}),
            Note(leader_id, "subscriber_left", f"subscriber_left:{sub.pk}", data),
        ]
    )


def copy_withdrawal_done(sub: Subscription, amount: Decimal, transfer_id: int) -> None:
    data = {"subscription_id": sub.pk, "portfolio_id": sub.portfolio_id, "amount": str(amount)}
    notify([Note(sub.follower_id, "withdrawal_done", f"copy_withdrawal:{transfer_id}", data)])


def register() -> None:
    register_execution_listener(notify_executions)
