"""The audit trail (a room every app may call; docs/decisions.md §71).

Who changed what, when, before/after, immutable. Built on django-auditlog's
one ``LogEntry`` table:

- ``register(model, fields=...)`` — a model whose saves are recorded
  automatically (admin edits, services that ``save()``), with the actor taken
  from the request (admin session or API token).
- ``record(...)`` — a change no model signal sees (a staff action, a
  conditional ``UPDATE``, a kill switch flipped by a command): call it in the
  same transaction as the change.

Filled in by the audit work of issue #16; the signatures are the contract.
"""

from typing import Any

from auditlog.models import LogEntry
from auditlog.registry import auditlog


def register(model: type, *, fields: list[str] | None = None, exclude: list[str] | None = None) -> None:
    """Record every save and delete of ``model`` (only ``fields`` if given)."""
    auditlog.register(model, include_fields=fields or [], exclude_fields=exclude or [])


def record(
    *,
    actor: Any,
    action: str,
    target: Any,
    changes: dict[str, tuple[Any, Any]] | None = None,
    reason: str = "",
) -> LogEntry:
    """One audit entry for ``target`` (a model instance): ``action`` is a
    stable verb ("pause", "force_close", "kill_switch.on", …), ``changes`` maps
    a field to (before, after), ``actor`` a user or None (the system)."""
    return LogEntry.objects.log_create(
        target,
        force_log=True,
        action=LogEntry.Action.UPDATE,
        changes={field: [_text(before), _text(after)] for field, (before, after) in (changes or {}).items()},
        actor=actor,
        additional_data={"action": action, "reason": reason},
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
