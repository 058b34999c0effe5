"""Every write of the live settings room: the kill switches (global and per
portfolio) and the settings record. The admin and ``manage.py copying`` call
these; each change is audited (``copytrading.audit.record``) in the same
transaction, and drops this process's cached view at once (others within
``live.CACHE_SECONDS``).

A halt that starts tells the halt listeners in its transaction: the
followers app registers the notification of the followers it concerns (the
core does not know who follows what)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from copytrading import audit, live
from copytrading.errors import DomainError
from copytrading.live.models import REASON_MAX, LiveSettings, PortfolioHalt
from copytrading.outages import after_commit


@dataclass(frozen=True, slots=True)
class HaltStarted:
    """A halt that has just started: ``portfolio_id`` None is the global one."""

    portfolio_id: int | None
    reason: str
    at: datetime


HaltListener = Callable[[HaltStarted], None]
_halt_listeners: list[HaltListener] = []


def register_halt_listener(listener: HaltListener) -> None:
    """Have ``listener(HaltStarted)`` called after the commit of every halt
    that starts (not of one already on): the switch is on at once, whatever
    the number of copies to tell, and a listener that fails cannot undo it.
    Registering twice is a no-op."""
    if listener not in _halt_listeners:
        _halt_listeners.append(listener)


def _halt_started(started: HaltStarted) -> None:
    for listener in _halt_listeners:
        after_commit(partial(listener, started), what="kill switch listener")


# (actor, {field: (before, after)}): called in the transaction of every
# ``update_settings`` that changed knobs (the fees app keeps its default
# groups' caps equal to the record's defaults this way).
SettingsListener = Callable[[Any, dict[str, tuple[Any, Any]]], None]
_settings_listeners: list[SettingsListener] = []


def register_settings_listener(listener: SettingsListener) -> None:
    if listener not in _settings_listeners:
        _settings_listeners.append(listener)


def _invalidate() -> None:
    live.invalidate()
    after_commit(live.invalidate, what="live settings cache invalidation")


def halt_reason_checked(reason: str | None) -> str:
    """The reason a halt is given, stripped; DomainError when empty or too long."""
    text = (reason or "").strip()
    if not text:
        raise DomainError("HALT_REASON_REQUIRED", "A reason is required to halt copying.", field="reason")
    if len(text) > REASON_MAX:
        raise DomainError("HALT_REASON_TOO_LONG", f"The reason is at most {REASON_MAX} characters.", field="reason")
    return text


def _record() -> LiveSettings:
    LiveSettings.get_solo()  # created with the initial values if it never was
    return LiveSettings.objects.select_for_update().get(pk=LiveSettings.singleton_instance_id)


# --- the global kill switch -------------------------------------------------------


@transaction.atomic
def halt_all(*, reason: str, actor: Any = None) -> bool:
    """Halt all copying. False (nothing written) if it already is."""
    reason = halt_reason_checked(reason)
    record = _record()
    if record.copying_halted:
        return False
    now = timezone.now()
    LiveSettings.objects.filter(pk=record.pk).update(
        copying_halted=True, copying_halted_reason=reason, copying_halted_at=now, copying_halted_by=actor,
        updated_at=now,
    )  # fmt: skip
    audit.record(
        actor=actor,
        action="kill_switch.on",
        target=record,
        changes={"copying_halted": (False, True), "copying_halted_reason": (record.copying_halted_reason, reason)},
        reason=reason,
    )
    _invalidate()
    _halt_started(HaltStarted(None, reason, now))
    return True


@transaction.atomic
def resume_all(*, actor: Any = None, reason: str = "") -> bool:
    """Lift the global halt. False if copying is not halted."""
    record = _record()
    if not record.copying_halted:
        return False
    now = timezone.now()
    LiveSettings.objects.filter(pk=record.pk).update(
        copying_halted=False, copying_halted_reason="", copying_halted_at=None, copying_halted_by=None,
        updated_at=now,
    )  # fmt: skip
    audit.record(
        actor=actor,
        action="kill_switch.off",
        target=record,
        changes={"copying_halted": (True, False), "copying_halted_reason": (record.copying_halted_reason, "")},
        reason=reason.strip(),
    )
    _invalidate()
    return True


# --- one portfolio -------------------------------------------------------------------


@transaction.atomic
def halt_portfolio(portfolio_id: int, *, reason: str, actor: Any = None) -> bool:
    """Halt copying of one portfolio. False if it already is halted. The
    caller checks that the portfolio exists (the core knows it by id)."""
    reason = halt_reason_checked(reason)
    now = timezone.now()
    halt, created = PortfolioHalt.objects.get_or_create(
        portfolio_id=portfolio_id, defaults={"reason": reason, "by": actor, "at": now}
    )
    if not created:
        return False
    audit.record(
        actor=actor,
        action="kill_switch.portfolio_on",
        target=halt,
        changes={"portfolio_id": (None, portfolio_id), "reason": (None, reason)},
        reason=reason,
    )
    _invalidate()
    _halt_started(HaltStarted(portfolio_id, reason, now))
    return True


@transaction.atomic
def resume_portfolio(portfolio_id: int, *, actor: Any = None, reason: str = "") -> bool:
    """Lift one portfolio's halt. False if it is not halted."""
    halt = PortfolioHalt.objects.select_for_update().filter(portfolio_id=portfolio_id).first()
    if halt is None:
        return False
    audit.record(
        actor=actor,
        action="kill_switch.portfolio_off",
        target=halt,
        changes={"portfolio_id": (portfolio_id, None), "reason": (halt.reason, None)},
        reason=reason.strip(),
    )
    halt.delete()
    _invalidate()
    return True


# --- the settings record ------------------------------------------------------------

# The knobs ``update_settings`` edits (the kill switch has its own services).
KNOBS = (
    "margin_call_level_pct",
    "min_investment",
    "notify_trade_copied",
    "default_max_profit_share_pct",
    "default_platform_cut_pct",
    "default_max_followers",
    "catalog_cache_seconds",
)
SWITCH = ("copying_halted", "copying_halted_reason")


@transaction.atomic
def update_settings(*, actor: Any = None, **values: Any) -> list[str]:
    """Change knobs of the record (and the global switch, if
    ``copying_halted`` is given: halting needs ``copying_halted_reason``).
    Returns the names of the fields that changed; each is audited with its
    before and after. Bad values raise ``DomainError`` (a stable code per
    field, nothing written)."""
    unknown = sorted(set(values) - set(KNOBS) - set(SWITCH))
    if unknown:
        raise DomainError("UNKNOWN_LIVE_SETTING", f"No live setting named {unknown[0]!r}.", field=unknown[0])
    record = _record()
    changes: dict[str, tuple[Any, Any]] = {}
    candidate = LiveSettings(**{f: getattr(record, f) for f in KNOBS}, pk=record.pk)
    for name in KNOBS:
        if name not in values:
            continue
        value = _coerce(name, values[name])
        if value != getattr(record, name):
            changes[name] = (getattr(record, name), value)
            setattr(candidate, name, value)
    _validate(candidate)
    changed = list(changes)
    if changes:
        LiveSettings.objects.filter(pk=record.pk).update(
            **{name: after for name, (_, after) in changes.items()}, updated_at=timezone.now()
        )
        audit.record(actor=actor, action="live_settings.update", target=record, changes=changes)
        _invalidate()
        for listener in _settings_listeners:
            listener(actor, changes)
    if "copying_halted" in values:
        if values["copying_halted"]:
            wanted = halt_reason_checked(values.get("copying_halted_reason"))
            if record.copying_halted and wanted != record.copying_halted_reason:
                LiveSettings.objects.filter(pk=record.pk).update(copying_halted_reason=wanted)
                audit.record(
                    actor=actor,
                    action="kill_switch.reason",
                    target=record,
                    changes={"copying_halted_reason": (record.copying_halted_reason, wanted)},
                    reason=wanted,
                )
                _invalidate()
                changed.append("copying_halted_reason")
            elif halt_all(reason=wanted, actor=actor):
                changed += ["copying_halted", "copying_halted_reason"]
        elif resume_all(actor=actor):
            changed += ["copying_halted", "copying_halted_reason"]
    return changed


def _coerce(name: str, value: Any) -> Any:
    field = LiveSettings._meta.get_field(name)
    try:
        if isinstance(value, float):
            raise ValidationError("floats are not exact")
        coerced = field.to_python(value)
    except (ValidationError, InvalidOperation, TypeError, ValueError) as exc:
        raise DomainError("INVALID_LIVE_SETTING", f"{name} has an invalid value.", field=name) from exc
    if isinstance(coerced, Decimal) and not coerced.is_finite():
        raise DomainError("INVALID_LIVE_SETTING", f"{name} has an invalid value.", field=name)
    return coerced


def _validate(candidate: LiveSettings) -> None:
    """The record's own checks (field sizes, the range constraints) before
    anything is written: a bad value is a 400, never an IntegrityError."""
    try:
        candidate.full_clean(exclude=["copying_halted_by"], validate_unique=False)
    except ValidationError as exc:
        name = next(iter(exc.message_dict)) if hasattr(exc, "message_dict") else None
        raise DomainError(
            "INVALID_LIVE_SETTING", f"{name or 'A live setting'} is out of range: {exc.messages[0]}", field=name
        ) from exc
