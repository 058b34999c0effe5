"""The exchange reconciliation's drifts on copy wallets become risk events on
their subscription (the core knows accounts, not subscriptions: it calls the
listener registered here, in its recording transaction)."""

from copytrading.exchanges.drift_reports import DriftNotice, register_drift_listener
from followers.models import Subscription
from risk.services import exchange_drift_events_record


def record_drifts(notices: list[DriftNotice]) -> None:
    """One risk event per drift that concerns a subscription; one query to
    map copy wallets to subscriptions, one insert."""
    wanted = sorted({n.account_id for n in notices if n.subscription_id is None})
    of_wallet = (
        dict(Subscription.objects.filter(copy_account_id__in=wanted).values_list("copy_account_id", "pk"))
        if wanted
        else {}
    )
    drifts = []
    for n in notices:
        sid = n.subscription_id or of_wallet.get(n.account_id)
        if sid is not None:
            drifts.append((sid, n.detail, n.exchange_quantity, n.service_quantity, n.repaired))
    exchange_drift_events_record(drifts=drifts)


def register() -> None:
    register_drift_listener(record_drifts)
