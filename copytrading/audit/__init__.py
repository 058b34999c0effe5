"""The audit trail (a room every app may call; docs/decisions.md §71).

Who changed what, when, before/after, immutable. Built on django-auditlog's
one ``LogEntry`` table:

- ``register(model, fields=...)`` — a model whose saves are recorded
  automatically (admin edits, services that ``save()``), with the actor taken
  from the request (admin session or API token). What is registered is listed
  in one place: copytrading/audit/registry.py.
- ``record(...)`` — a change no model signal sees (a staff action, a
  conditional ``UPDATE``, a kill switch flipped by a command): call it in the
  same transaction as the change, so a rollback takes the entry with it.

The actor: the one given, else the user of the request being served (the
admin's session, or the API's token once DRF has authenticated it:
copytrading/audit/middleware.py), else nobody, shown as "system" (jobs,
commands). Each entry also keeps the actor's username (``additional_data``),
so it still names them after the user row is gone. Entries are never changed
or deleted: the admin is read-only and, on PostgreSQL, a trigger refuses it
(copytrading migration ``audit_log_immutable``).
"""

from collections.abc import Callable
from typing import Any

from auditlog.context import auditlog_value
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save

SYSTEM = "system"
MASK_CALLABLE = "copytrading.audit.mask_secret"


def register(
    model: type | str,
    *,
    fields: list[str] | None = None,
    exclude: list[str] | None = None,
    mask: list[str] | None = None,
    m2m: list[str] | None = None,
) -> None:
    """Record every save and delete of ``model`` (a class or an "app.Model"
    label; only ``fields`` if given). ``mask`` fields are recorded as changed,
    never with their values (secrets); ``m2m`` many-to-many fields are
    recorded as rows added and removed (a user's groups and permissions)."""
    if isinstance(model, str):
        from django.apps import apps

        model = apps.get_model(model)
    auditlog.register(
        model,
        include_fields=fields or [],
        exclude_fields=exclude or [],
        mask_fields=mask or [],
        mask_callable=MASK_CALLABLE,
        m2m_fields=set(m2m or ()),
    )


def record(
    *,
    actor: Any = None,
    action: str,
    target: Any,
    changes: dict[str, tuple[Any, Any]] | None = None,
    reason: str = "",
    masked: frozenset[str] | set[str] = frozenset(),
) -> LogEntry:
    """One audit entry for ``target`` (a model instance): ``action`` is a
    stable verb ("pause", "force_close", "kill_switch.on", …), ``changes`` maps
    a field to (before, after), ``actor`` a user or None (the request's user,
    else the system). Fields in ``masked`` are recorded as changed, never with
    their values."""
    data = {"action": action}
    if reason:
        data["reason"] = reason
    return LogEntry.objects.log_create(
        target,
        force_log=True,
        action=LogEntry.Action.UPDATE,
        changes={
            field: [_shown(field in masked, before), _shown(field in masked, after)]
            for field, (before, after) in (changes or {}).items()
        },
        changes_text=_summary(action, reason),
        actor=actor if _is_user(actor) else None,
        additional_data=data,
    )


def mask_secret(value: str) -> str:
    """What a secret's before/after shows (django-auditlog's mask callable)."""
    return "[hidden]" if value not in ("", "None") else "[none]"


def actor_name(entry: LogEntry) -> str:
    """Who made the entry: the username kept with it, "system" for none."""
    data = entry.additional_data if isinstance(entry.additional_data, dict) else {}
    if data.get("actor"):
        return str(data["actor"])
    return entry.actor.get_username() if entry.actor_id else SYSTEM


def action_name(entry: LogEntry) -> str:
    """The entry's verb: the one a ``record`` gave, else create/update/delete."""
    data = entry.additional_data if isinstance(entry.additional_data, dict) else {}
    return str(data.get("action") or entry.get_action_display())


def reason_of(entry: LogEntry) -> str:
    data = entry.additional_data if isinstance(entry.additional_data, dict) else {}
    return str(data.get("reason") or "")


def current_actor() -> Any:
    """The authenticated user of the request being served, or None."""
    context = auditlog_value.get(None)
    if not context:
        return None
    actor = context.get("actor")
    if isinstance(actor, Callable):
        actor = actor()
    return actor if _is_user(actor) else None


def _is_user(value: Any) -> bool:
    return isinstance(value, get_user_model()) and value.is_authenticated


def _shown(masked: bool, value: Any) -> str | None:
    if masked:
        return mask_secret("" if value in (None, "") else "x")
    return None if value is None else str(value)


def _summary(action: str, reason: str) -> str:
    return f"{action}: {reason}" if reason else action


def _stamp_actor(sender, instance: LogEntry, **kwargs) -> None:
    """Before an entry is written: its actor (the given one, else the
    request's) and that actor's username, kept in the entry itself.

    Connected at start-up, so it runs before django-auditlog's per-request
    receiver (which then finds the actor set and leaves it)."""
    if not instance._state.adding:
        return
    actor = instance.actor if instance.actor_id else current_actor()
    data = dict(instance.additional_data) if isinstance(instance.additional_data, dict) else {}
    if actor is not None:
        instance.actor = actor
        instance.actor_email = getattr(actor, "email", None) or None
        data["actor"] = actor.get_username()
    if data:
        instance.additional_data = data


def connect() -> None:
    """Called once at start-up (copytrading/apps.py)."""
    pre_save.connect(_stamp_actor, sender=LogEntry, weak=False, dispatch_uid="copytrading.audit.stamp_actor")
