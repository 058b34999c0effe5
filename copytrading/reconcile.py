"""The reconciler's repairs beyond resuming chunks: mirrors left behind.

A mirror is orphaned when its leader's position closed (or its leader's limit
order was cancelled) a while ago and the mirror is still open: a close that
was refused for one follower, a message lost beyond every retry, a bug. The
reconciler closes such mirrors at market (and cancels such orders) through
the same venue path as everything else, so the ledger, fees and the risk
books see an ordinary close. Each repair is its own transaction under the
row locks the propagation path takes too, so a chunk still applying the
leader's close and the reconciler never both close one mirror.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from copytrading.errors import DomainError
from copytrading.models import (
    LeaderEvent,
    LeaderEventKind,
    LeaderEventStatus,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
)
from copytrading.venues import venue_for_account

log = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class OrphanRepair:
    closed_positions: int = 0
    cancelled_orders: int = 0


def orphaned_mirror_positions(*, older_than: timedelta = ORPHAN_GRACE) -> list[tuple[int, int]]:
    """(position id, account id) of open mirrors whose leader position closed before the grace period."""
    cutoff = timezone.now() - older_than
    return list(
        Position.objects.filter(
            status=PositionStatus.OPEN,
            leader_position__status=PositionStatus.CLOSED,
            leader_position__closed_at__lt=cutoff,
        )
        .order_by("pk")
        .values_list("pk", "account_id")
    )


def orphaned_mirror_orders(*, older_than: timedelta = ORPHAN_GRACE) -> list[tuple[int, int]]:
    """(order id, account id) of resting mirror orders whose leader order's
    cancellation finished propagating before the grace period."""
    candidates = list(
        Order.objects.filter(status=OrderStatus.OPEN, leader_order__status=OrderStatus.CANCELLED)
        .order_by("pk")
        .values_list("pk", "account_id", "leader_order_id")
    )
    if not candidates:
        return []
    cutoff = timezone.now() - older_than
    cancelled = set(
        LeaderEvent.objects.filter(
            kind=LeaderEventKind.LIMIT_CANCELLED,
            status=LeaderEventStatus.DONE,
            completed_at__lt=cutoff,
            payload__leader_order_id__in=sorted({leader_order_id for _, _, leader_order_id in candidates}),
        ).values_list("payload__leader_order_id", flat=True)
    )
    return [(pk, account_id) for pk, account_id, leader_order_id in candidates if leader_order_id in cancelled]


def orphans_repair(*, older_than: timedelta = ORPHAN_GRACE) -> OrphanRepair:
    closed = cancelled = 0
    for position_id, account_id in orphaned_mirror_positions(older_than=older_than):
        try:
            with transaction.atomic():
                venue_for_account(account_id).position_close(account_id=account_id, position_id=position_id)
            closed += 1
        except DomainError as exc:  # closed meanwhile (by the leader's close or the follower)
            log.info("orphaned mirror %s not closed: %s", position_id, exc.code)
    for order_id, account_id in orphaned_mirror_orders(older_than=older_than):
        try:
            with transaction.atomic():
                venue_for_account(account_id).limit_order_cancel(account_id=account_id, order_id=order_id, mirror=True)
            cancelled += 1
        except DomainError as exc:
            log.info("orphaned mirror order %s not cancelled: %s", order_id, exc.code)
    if closed or cancelled:
        log.warning("reconciler closed %s orphaned mirrors and cancelled %s orphaned orders", closed, cancelled)
    return OrphanRepair(closed_positions=closed, cancelled_orders=cancelled)
