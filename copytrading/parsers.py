"""Request bodies that are JSON but not text we can keep.

JSON may spell characters that no UTF-8 text holds: a lone surrogate
(``"\\ud800"``) cannot be encoded back (the response echoing it, a log line or
the database driver fails), and NUL (``"\\u0000"``) is refused by PostgreSQL in
text and jsonb alike. Both are refused at the door, with the field's path, so
no view, serializer or error message ever carries them.
"""

from collections.abc import Iterator

from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser

CODE = "invalid_characters"
DETAIL = "Text must not contain NUL characters or unpaired surrogates."


def _bad(text: str) -> bool:
    return "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text)


def _walk(value: object, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if _bad(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if _bad(str(key)):
                yield path or "non_field_errors"
            else:
                yield from _walk(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}.{index}" if path else str(index))


def invalid_text_path(data: object) -> str | None:
    """The dotted path of the first string (or key) holding a NUL or an
    unpaired surrogate; ``""`` for a bare top-level string; None if all is well."""
    return next(_walk(data, ""), None)


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing text that cannot be stored or echoed."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        path = invalid_text_path(data)
        if path is not None:
            raise ValidationError({path or "non_field_errors": [DETAIL]}, code=CODE)
        return data
