"""A page's form, checked like the API checks the same input: the API's
serializer for the shape, the service for the rules; every refusal becomes a
message next to its field (``errors[field]``) or above the form
(``errors["__all__"]``)."""

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from copytrading.errors import DomainError, ValidationErrors

FORM = "__all__"
Errors = dict[str, list[str]]


def domain_errors(exc: DomainError) -> Errors:
    """A service's refusal, each error under its field."""
    errors: Errors = {}
    for error in getattr(exc, "errors", None) or [exc]:
        errors.setdefault(error.field or FORM, []).append(str(error.detail))
    return errors


def serializer_errors(detail: Any, prefix: str = "") -> Errors:
    """DRF's error tree, flattened: nested fields as ``outer.inner``."""
    errors: Errors = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            name = FORM if key in ("non_field_errors", FORM) and not prefix else f"{prefix}{key}"
            for field, messages in serializer_errors(value, f"{name}.").items():
                errors.setdefault(field.rstrip(".") or name, []).extend(messages)
    elif isinstance(detail, list):
        for item in detail:
            for field, messages in serializer_errors(item, prefix).items():
                errors.setdefault(field, []).extend(messages)
    else:
        errors.setdefault(prefix.rstrip(".") or FORM, []).append(str(detail))
    return errors


def validated(
    serializer_class: type[serializers.Serializer], data: Mapping, **kwargs: Any
) -> tuple[dict | None, Errors]:
    """The serializer's ``validated_data``, or its errors as messages."""
    s = serializer_class(data=data, **kwargs)
    if s.is_valid():
        return s.validated_data, {}
    return None, serializer_errors(s.errors)


def json_value(value: Any, field: serializers.Field) -> Any:
    """A form's text as the JSON type the API's field takes (the API reads
    JSON types strictly, copytrading/strict_fields.py): "true"/"false" for a
    yes/no, digits for an integer; anything else is left for the field to
    refuse with its own message."""
    if not isinstance(value, str):
        return value
    if isinstance(field, serializers.BooleanField) and value in ("true", "false"):
        return value == "true"
    digits = value.removeprefix("-")
    if isinstance(field, serializers.IntegerField) and len(digits) <= 20 and digits.isascii() and digits.isdigit():
        return int(value)
    return value


def as_json_types(data: Mapping[str, Any], serializer: serializers.Serializer) -> dict[str, Any]:
    """Every value of a form as its field in ``serializer`` takes it (see
    ``json_value``); names the serializer does not have are left as they are."""
    fields = serializer.fields
    return {name: json_value(value, fields[name]) if name in fields else value for name, value in data.items()}


def form_data(post: Mapping) -> dict[str, Any]:
    """A form's fields as the API would receive them: an empty optional
    field is left out (the API's default applies), not sent as ``""``."""
    data = {}
    for key in post:
        if key in ("csrfmiddlewaretoken",):
            continue
        value = post.get(key)
        if value == "":
            continue
        data[key] = value
    return data


__all__ = [
    "FORM",
    "DomainError",
    "Errors",
    "ValidationErrors",
    "as_json_types",
    "domain_errors",
    "form_data",
    "json_value",
    "serializer_errors",
    "validated",
]
