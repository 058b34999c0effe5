"""Copying the leader's limit orders: placing, re-pricing and cancelling the
follower's mirror limit, and what the mirror does when the leader's order
fills (used by both the propagation and the price-driven matching). Pure."""

from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from copytrading import sizing, trade_math
from copytrading.decisions.model import (
    COPIED,
    INSUFFICIENT_MARGIN,
    LIMIT_CANCEL,
    LIMIT_CANCELLED,
    LIMIT_PLACE,
    LIMIT_PLACED,
    LIMIT_REPRICE,
    NO_MIRROR_ORDER,
    NO_MIRROR_POSITION,
    ORDER_CANCELLED,
    ORDER_FILLED,
    ORDER_OPEN,
    ORDER_REJECTED,
    POSITION_CLOSE,
    POSITION_REDUCE,
    PRODUCT_NOT_COPIED,
    REJECTED,
    SKIPPED,
    SUBSCRIPTION_PAUSED,
    Decision,
    EventView,
    MarketView,
    MirrorOrderView,
    MirrorView,
    PreTradeCheck,
    Share,
    TargetView,
    skip,
)
from copytrading.decisions.rules import reduce_by, size
from copytrading.money import ZERO


@dataclass(frozen=True)
class LeaderStep:
    """One step of a leader's fill, as its event describes it."""

    kind: str  # POSITION_OPEN (open or increase), POSITION_REDUCE or POSITION_CLOSE
    quantity: Decimal = ZERO  # opened, reduced or closed quantity
    fraction: Decimal = ZERO  # share of the position reduced (events recorded before quantity_before)
    quantity_before: Decimal = ZERO  # the leader's position before a reduce (model.Share)

    @cached_property
    def share(self) -> Share:
        return Share(self.quantity, self.quantity_before, self.fraction)


@dataclass(frozen=True)
class MirrorStep:
    action: str
    quantity: Decimal


def mirror_limit_steps(
    steps: list[LeaderStep],
    *,
    order_quantity: Decimal,
    mirror_order_quantity: Decimal,
    mirror_quantity: Decimal | None,
    price: Decimal,
    constraints: sizing.Constraints,
) -> tuple[list[MirrorStep], str]:
    """What a follower's mirror limit does when the leader's limit order fills
    in ``steps``: the mirror follows each step the way a copied market order
    would (close → close, reduce → the same share, open → the mirror
    order's size, scaled to the opened part of a flip), so it never ends up
    on another side than the leader. Returns the steps and, if a step could
    not be mirrored, the reason."""
    out: list[MirrorStep] = []
    held = mirror_quantity or ZERO
    reason = ""
    for step in steps:
        if step.kind == POSITION_CLOSE:
            if held > 0:
                out.append(MirrorStep(trade_math.CLOSE, held))
                held = ZERO
            else:
                reason = NO_MIRROR_POSITION
        elif step.kind == POSITION_REDUCE:
            planned = reduce_by(held, step.share, constraints) if held > 0 else None
            if planned is None:
                reason = NO_MIRROR_POSITION if held <= 0 else sizing.BELOW_MIN_QUANTITY
                continue
            out.append(MirrorStep(*planned))
            held -= planned[1]
        else:
            raw = mirror_order_quantity * step.quantity / order_quantity if order_quantity > 0 else ZERO
            quantity, why = sizing.constrain(raw, price, constraints)
            if why:
                reason = why
                continue
            out.append(MirrorStep(trade_math.INCREASE if held > 0 else trade_math.OPEN, quantity))
            held += quantity
    return out, reason


def limit_event(
    event: EventView,
    target: TargetView,
    *,
    free: Decimal,
    equity: Decimal,
    order: MirrorOrderView | None,
    market: MarketView,
    pretrade: PreTradeCheck | None = None,
) -> Decision:
    """Place, re-price or cancel the follower's mirror of a leader limit order.
    The mirror rests at the leader's price, so there is no slippage to check.
    The pre-trade limits are checked when it is placed, counting it as a new
    position (it may open one when it fills)."""
    if event.kind == LIMIT_PLACED:
        if not target.active:
            return skip(SUBSCRIPTION_PAUSED)
        if not target.copy_margin:
            return skip(PRODUCT_NOT_COPIED)
        leverage = min(target.leverage_override or event.leverage, market.max_leverage)
        price = event.price
        quantity, reason, raw = size(event, target, price, equity, market)
        if reason:
            return Decision(SKIPPED, reason, seen=(raw, free, price))
        refused = pretrade and pretrade(target.subscription_id, opens_position=True, notional=quantity * price)
        if refused:
            return Decision(
                REJECTED, refused, quantity=quantity, price=price, leverage=leverage,
                seen=(raw, free, price),
            )  # fmt: skip
        reserved = trade_math.margin_for(quantity, price, leverage)
        if reserved > free:
            return Decision(
                REJECTED, INSUFFICIENT_MARGIN, quantity=quantity, price=price, leverage=leverage,
                seen=(raw, free, price),
            )  # fmt: skip
        return Decision(
            COPIED, "", LIMIT_PLACE, event.order_side, quantity, price, leverage, reserved, ORDER_OPEN,
            seen=(raw, free, price),
        )  # fmt: skip

    # Re-price and cancel reach paused followers too: a resting mirror keeps
    # following its leader order, like an open mirror follows closes.
    if order is None or order.status != ORDER_OPEN:
        return skip(NO_MIRROR_ORDER)
    if event.kind == LIMIT_CANCELLED:
        return Decision(
            COPIED, "", LIMIT_CANCEL, event.order_side, order.quantity, order.price, order.leverage,
            order_status=ORDER_CANCELLED,
        )  # fmt: skip
    reserved = trade_math.margin_for(order.quantity, event.price, order.leverage)
    if reserved - order.reserved > free:
        # Left at the old price the mirror would fill where the leader no
        # longer buys: it is cancelled instead.
        return Decision(
            REJECTED, INSUFFICIENT_MARGIN, LIMIT_CANCEL, event.order_side, order.quantity, event.price,
            order.leverage, order_status=ORDER_CANCELLED, seen=(None, free, event.price),
        )  # fmt: skip
    return Decision(
        COPIED, "", LIMIT_REPRICE, event.order_side, order.quantity, event.price, order.leverage, reserved,
        seen=(None, free, event.price),
    )  # fmt: skip


def mirror_limit_fill(
    event: EventView,
    *,
    free: Decimal,
    mirror: MirrorView | None,
    order: MirrorOrderView,
    market: MarketView,
) -> Decision:
    """One step of the leader's limit fill applied to a still resting mirror
    limit, at the mirror's price. The last step ends the mirror order: filled
    if it traded, else cancelled (its reservation is released either way)."""
    steps, reason = mirror_limit_steps(
        [LeaderStep(event.kind, event.quantity, event.fraction, event.quantity_before)],
        order_quantity=event.order_quantity,
        mirror_order_quantity=order.quantity,
        mirror_quantity=mirror.quantity if mirror else None,
        price=order.price,
        constraints=market.constraints,
    )
    release = order.reserved if event.limit_final else ZERO
    if not steps:
        return Decision(
            SKIPPED, reason, order_status=ORDER_CANCELLED if event.limit_final else None,
            seen=(_mirror_step_attempted(event, order, mirror), None, order.price),
        )  # fmt: skip
    (step,) = steps
    leverage = mirror.leverage if mirror is not None else order.leverage
    opens = step.action in (trade_math.OPEN, trade_math.INCREASE)
    if opens and trade_math.margin_for(step.quantity, order.price, leverage) > free + release:
        return Decision(
            REJECTED, INSUFFICIENT_MARGIN, quantity=step.quantity, price=order.price, leverage=leverage,
            order_status=ORDER_REJECTED if event.limit_final else None, seen=(None, free + release, order.price),
        )  # fmt: skip
    return Decision(
        COPIED, "", step.action, event.order_side, step.quantity, order.price, leverage,
        order_status=ORDER_FILLED if event.limit_final else None,
        seen=(None, free + release if opens else None, order.price),
    )  # fmt: skip


def _mirror_step_attempted(event: EventView, order: MirrorOrderView, mirror: MirrorView | None) -> Decimal | None:
    """The unrounded size of a mirror-limit step that came to nothing (only
    computed then, for the execution row): the mirror order's part of an
    open, the leader's share of the mirror for a reduce; none for a close."""
    if event.kind == POSITION_REDUCE:
        return event.share.exact(mirror.quantity) if mirror is not None else None
    if event.kind == POSITION_CLOSE:
        return None
    return order.quantity * event.quantity / event.order_quantity if event.order_quantity > 0 else None
