"""Numbers and times as the client pages show them: ``{% load web %}``.

Money with separators and its currency (``1,234.50 USDT``), signed where a
gain or loss (``+12.30 USDT``), percents with two places, quantities without
trailing zeros, times in the reader's zone (the ``tz`` cookie). A value that
is not a number (``None``, ``""``) shows as a dash, never as an error.
"""

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from django import template
from django.utils import timezone
from django.utils.safestring import mark_safe

from copytrading.web import charts

register = template.Library()
DASH = "—"
MINUS = "\u2212"  # a real minus sign: the same width as the plus


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def _grouped(number: Decimal, places: int) -> str:
    q = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = f"{abs(q):,.{places}f}"
    return f"{MINUS}{text}" if q < 0 else text


@register.filter
def money(value, currency: str = "USDT") -> str:
    """``1234.5`` → ``1,234.50 USDT``."""
    number = _decimal(value)
    if number is None:
        return DASH
    return f"{_grouped(number, 2)} {currency}".strip()


@register.filter
def signed_money(value, currency: str = "USDT") -> str:
    """``12.3`` → ``+12.30 USDT``; ``-4`` → ``-4.00 USDT`` (with a real minus sign)."""
    number = _decimal(value)
    if number is None:
        return DASH
    text = _grouped(number, 2)
    return f"{'+' if number.quantize(Decimal('0.01')) > 0 else ''}{text} {currency}".strip()


@register.filter
def pct(value, places: int = 2) -> str:
    """A percent number (``7.6``) → ``7.60 %``."""
    number = _decimal(value)
    if number is None:
        return DASH
    return f"{_grouped(number, int(places))} %"


@register.filter
def signed_pct(value) -> str:
    number = _decimal(value)
    if number is None:
        return DASH
    return f"{'+' if number.quantize(Decimal('0.01')) > 0 else ''}{_grouped(number, 2)} %"


@register.filter
def qty(value) -> str:
    """A quantity or price as precise as it is: ``0.00150000`` → ``0.0015``,
    ``65000.5`` → ``65,000.5``."""
    number = _decimal(value)
    if number is None:
        return DASH
    normal = number.normalize()
    places = max(-normal.as_tuple().exponent, 0) if isinstance(normal.as_tuple().exponent, int) else 0
    return _grouped(number, places)


@register.filter
def tone(value) -> str:
    """A CSS class for a gain (``up``), a loss (``down``) or nothing (``flat``)."""
    number = _decimal(value)
    if number is None or number == 0:
        return "flat"
    return "up" if number > 0 else "down"


@register.filter
def when(value) -> str:
    """A time in the reader's zone: ``2026-12-05 21:30 CET``."""
    if not value:
        return DASH
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")


@register.simple_tag
def sparkline(values, label: str = "Equity") -> str:
    return mark_safe(charts.sparkline(values or [], label=label))  # built from numbers; labels escaped


@register.inclusion_tag("web/_field_errors.html")
def field_errors(errors, field: str):
    """The messages for ``field`` (``errors`` as copytrading.web.forms makes them)."""
    messages = (errors or {}).get(field, [])
    return {"messages": messages, "field": field}
