"""Copy templates: the three platform defaults and each portfolio's custom
templates (every write here; the leader's API and the admin call these)."""

from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from copytrading.errors import Conflict, DomainError, validate_all
from portfolios.copy_settings import (
    BASE_DEFAULTS,
    DEFAULT_TEMPLATES,
    SETTING_FIELDS,
    TEMPLATE_FIELDS,
    TEMPLATE_RISK_FIELDS,
    validate_settings,
    validate_template_risk,
)
from portfolios.locks import lock_portfolio
from portfolios.models import CopyTemplate, Portfolio

MAX_TEMPLATES_PER_PORTFOLIO = 5


def max_templates() -> int:
    return int(getattr(settings, "MAX_TEMPLATES_PER_PORTFOLIO", MAX_TEMPLATES_PER_PORTFOLIO))


@dataclass(frozen=True)
class TemplateView:
    """A template as subscribe and the API see it, default or custom."""

    id: str  # "conservative", "balanced", "aggressive", or a custom template's id
    name: str
    description: str
    platform: bool
    values: dict


def _view(template: CopyTemplate) -> TemplateView:
    return TemplateView(
        id=str(template.pk),
        name=template.name,
        description=template.description,
        platform=False,
        values={name: getattr(template, name) for name in TEMPLATE_FIELDS},
    )


def default_templates() -> list[TemplateView]:
    return [TemplateView(t.key, t.name, t.description, True, dict(t.values)) for t in DEFAULT_TEMPLATES.values()]


def templates_of(portfolio: Portfolio) -> list[TemplateView]:
    """The platform defaults, then the portfolio's own templates."""
    return default_templates() + [_view(t) for t in CopyTemplate.objects.filter(portfolio=portfolio).order_by("pk")]


def template_resolve(*, portfolio: Portfolio, template: str | int) -> TemplateView:
    """The template a follower subscribes with: a platform default by key, or
    one of this portfolio's custom templates by id."""
    key = str(template).strip().lower()
    if key in DEFAULT_TEMPLATES:
        t = DEFAULT_TEMPLATES[key]
        return TemplateView(t.key, t.name, t.description, True, dict(t.values))
    # An id is ASCII digits ("²" and "⑦" are digits to str.isdigit, not to int).
    is_id = key.isascii() and key.isdigit()
    found = CopyTemplate.objects.filter(portfolio=portfolio, pk=int(key)).first() if is_id else None
    if found is None and is_id:
        # An id: another portfolio's template is not found, like any foreign id.
        raise DomainError(
            "UNKNOWN_TEMPLATE", f"There is no template {template!r} for this portfolio.", field="template", status=404
        )
    if found is None:
        raise DomainError(
            "UNKNOWN_TEMPLATE",
            f"There is no template {template!r} for this portfolio "
            f"(platform templates: {', '.join(DEFAULT_TEMPLATES)}).",
            field="template",
        )
    return _view(found)


def _validated(values: dict) -> dict:
    risk = {k: values.get(k) for k in TEMPLATE_RISK_FIELDS}
    out, _ = validate_all(
        lambda: validate_settings({k: values.get(k) for k in SETTING_FIELDS}), lambda: validate_template_risk(risk)
    )
    return out | risk


def _clean_name(name) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise DomainError("INVALID_NAME", "The name must not be empty.", field="name")
    if name.lower() in DEFAULT_TEMPLATES:
        raise Conflict("NAME_TAKEN", f"{name!r} is the name of a platform template.", field="name")
    return name


@transaction.atomic
def copy_template_create(*, portfolio: Portfolio, name: str, description: str = "", **values) -> CopyTemplate:
    """A custom template; the fields not given take the platform base defaults."""
    unknown = set(values) - set(TEMPLATE_FIELDS)
    if unknown:
        raise DomainError("UNKNOWN_FIELD", f"Unknown template field {sorted(unknown)[0]}.", field=sorted(unknown)[0])
    name = _clean_name(name)
    # The portfolio row lock serializes creates, so the cap holds under races.
    lock_portfolio(portfolio.pk)
    if CopyTemplate.objects.filter(portfolio=portfolio).count() >= max_templates():
        raise Conflict(
            "TEMPLATE_LIMIT", f"A portfolio can have at most {max_templates()} custom templates.", field="name"
        )
    fields = _validated({**_blank(), **values})
    try:
        with transaction.atomic():
            return CopyTemplate.objects.create(portfolio=portfolio, name=name, description=description, **fields)
    except IntegrityError:
        raise Conflict("NAME_TAKEN", "This portfolio already has a template with this name.", field="name") from None


def _blank() -> dict:
    """A new template's values when none are given: the platform base
    defaults (progressive sizing needs its multiplier given), no risk limits."""
    return {**BASE_DEFAULTS, **dict.fromkeys(TEMPLATE_RISK_FIELDS)}


@transaction.atomic
def copy_template_update(*, template: CopyTemplate, **changes) -> CopyTemplate:
    """Change some fields of a custom template. Running copies keep the
    values they copied at subscribe."""
    unknown = set(changes) - {*TEMPLATE_FIELDS, "name", "description"}
    if unknown:
        raise DomainError("UNKNOWN_FIELD", f"Unknown template field {sorted(unknown)[0]}.", field=sorted(unknown)[0])
    template = CopyTemplate.objects.select_for_update().get(pk=template.pk)
    if "name" in changes:
        changes["name"] = _clean_name(changes["name"])
    current = {name: getattr(template, name) for name in TEMPLATE_FIELDS}
    fields = _validated({**current, **{k: v for k, v in changes.items() if k in TEMPLATE_FIELDS}})
    for name, value in {**fields, **{k: v for k, v in changes.items() if k in ("name", "description")}}.items():
        setattr(template, name, value)
    try:
        with transaction.atomic():
            template.save(update_fields=[*fields, *[k for k in changes if k in ("name", "description")], "updated_at"])
    except IntegrityError:
        raise Conflict("NAME_TAKEN", "This portfolio already has a template with this name.", field="name") from None
    return template


@transaction.atomic
def copy_template_delete(*, template: CopyTemplate) -> None:
    """Subscriptions made with it keep their copied settings."""
    CopyTemplate.objects.filter(pk=template.pk).delete()
