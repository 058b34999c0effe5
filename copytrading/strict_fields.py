"""JSON types are what the schema says they are.

DRF's fields coerce, a leniency meant for form posts: a CharField turns
``{"name": 0}`` into the name "0", a DecimalField takes the number ``0`` and
reads ``""`` as null, an IntegerField takes ``"5"``, a BooleanField ``"yes"``
and ``1``. The API takes JSON only (docs/decisions.md), so each field takes
exactly the JSON type the schema gives it: a string (decimals are strings,
never floats, so no amount is ever rounded by a client's float), an integer,
a boolean. Anything else is 400 ``INVALID`` on the field. Installed once, for
every serializer, by ``CopytradingConfig.ready``.
"""

from rest_framework import serializers
from rest_framework.fields import empty

_char = serializers.CharField.to_internal_value
_decimal_empty = serializers.DecimalField.validate_empty_values
_integer = serializers.IntegerField.to_internal_value
_boolean = serializers.BooleanField.to_internal_value


def _strict_char(self, data):
    if not isinstance(data, str):
        self.fail("invalid")
    return _char(self, data)


def _strict_decimal_empty(self, data):
    # DRF reads a blank string as null for a nullable decimal: "" is no number.
    if data is not empty and data is not None and (not isinstance(data, str) or not data.strip()):
        self.fail("invalid")
    return _decimal_empty(self, data)


def _strict_integer(self, data):
    if not isinstance(data, int) or isinstance(data, bool):
        self.fail("invalid")
    return _integer(self, data)


def _strict_boolean(self, data):
    if not isinstance(data, bool):
        self.fail("invalid")
    return _boolean(self, data)


def install() -> None:
    serializers.CharField.to_internal_value = _strict_char
    serializers.DecimalField.validate_empty_values = _strict_decimal_empty
    serializers.IntegerField.to_internal_value = _strict_integer
    serializers.BooleanField.to_internal_value = _strict_boolean
