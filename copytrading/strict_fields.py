"""JSON types are what the schema says they are.

DRF's CharField turns a number into a string (``{"name": 0}`` becomes the
name "0"), a leniency meant for form posts. The API takes JSON only
(docs/decisions.md), so a string field refuses anything but a string, as the
schema says: 400 INVALID on the field.
"""

from rest_framework import serializers

_char_to_internal_value = serializers.CharField.to_internal_value


def _strict_char_to_internal_value(self, data):
    if not isinstance(data, str):
        self.fail("invalid")
    return _char_to_internal_value(self, data)


def install() -> None:
    serializers.CharField.to_internal_value = _strict_char_to_internal_value
