"""The default groups follow the live settings' default caps: a change of
``default_max_profit_share_pct``, ``default_platform_cut_pct`` or
``default_max_followers`` (copytrading.live.services.update_settings)
updates the default fee and limits groups in the same transaction, audited
on each group."""

from typing import Any

from copytrading import audit
from copytrading.live.services import register_settings_listener
from fees.models import FeeGroup, LimitsGroup

# live settings field -> (group model, its field)
FOLLOWS = {
    "default_max_profit_share_pct": ((FeeGroup, "max_profit_share_pct"), (LimitsGroup, "max_profit_share_pct")),
    "default_platform_cut_pct": ((FeeGroup, "platform_cut_pct"),),
    "default_max_followers": ((LimitsGroup, "max_followers"),),
}


def defaults_follow(actor: Any, changes: dict[str, tuple[Any, Any]]) -> None:
    for name, (_, after) in changes.items():
        for model, field in FOLLOWS.get(name, ()):
            group = model.objects.select_for_update().filter(is_default=True).first()
            if group is None or getattr(group, field) == after:
                continue  # created with the record's value on first use
            before = getattr(group, field)
            setattr(group, field, after)
            group.save(update_fields=[field, "updated_at"])
            audit.record(
                actor=actor, action="live_settings.default_group", target=group, changes={field: (before, after)}
            )


def register() -> None:
    register_settings_listener(defaults_follow)
