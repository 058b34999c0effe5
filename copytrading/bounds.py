"""Serializer bounds taken from the columns they are stored in.

A value the column cannot hold (``integer out of range``, ``value too long for
type character varying``) must be a 400 naming the field, never a 500 from the
database. Serializers take their bounds from here so they cannot drift from
the models (tests/acceptance/test_input_bounds.py walks every write endpoint).
"""

from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations

# The same table every backend uses (PostgreSQL's integer/smallint/bigint).
INTEGER_RANGES = BaseDatabaseOperations.integer_field_ranges
# An id in a body is looked up, not stored: the range of a BigAutoField key.
ID_BOUNDS = {"min_value": 1, "max_value": INTEGER_RANGES["BigIntegerField"][1]}


def int_bounds(model: type[models.Model], name: str) -> dict[str, int]:
    """``min_value``/``max_value`` of an integer column, for an IntegerField."""
    low, high = INTEGER_RANGES[model._meta.get_field(name).get_internal_type()]
    return {"min_value": low, "max_value": high}


def max_length(model: type[models.Model], name: str) -> int:
    """``max_length`` of a character column, for a CharField."""
    return model._meta.get_field(name).max_length
