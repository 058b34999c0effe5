"""The client pages' charts: presets over the SVG charts the back office
draws too (copytrading/charts.py; docs/decisions.md §97). A gain is green, a
loss red; every chart scales to its container (CSS ``svg.chart``) and carries
a ``<title>`` and ``role="img"``. Pure: numbers in, markup out (the caller
marks it safe)."""

from collections.abc import Sequence
from decimal import Decimal

from copytrading import charts

Number = Decimal | float | int
UP, DOWN, FLAT = "#0f7b3f", "#c2262e", "#9aa5b1"


def _tone(values: Sequence[Number]) -> tuple[str, str]:
    if len(values) < 2:
        return "flat", FLAT
    return ("up", UP) if values[-1] >= values[0] else ("down", DOWN)


def sparkline(values: Sequence[Number], *, label: str, width: int = 120, height: int = 32) -> str:
    """A small line of ``values`` (oldest first): green when the last is at or
    above the first, red below; fewer than two values: a dash."""
    tone, color = _tone(values)
    return charts.sparkline(values, title=label, width=width, height=height, color=color, css=f"spark {tone}")


def line_chart(
    points: Sequence[tuple[str, Number]], *, label: str, unit: str = "", width: int = 640, height: int = 200
) -> str:
    """One line over labelled points (``(x label, y)``, oldest first)."""
    values = [y for _, y in points]
    tone, color = _tone(values)
    title = f"{label} ({unit.strip()})" if unit.strip() else label
    return charts.line_chart(
        [x for x, _ in points],
        [charts.Series(label, values, color)],
        title=title,
        width=width,
        height=height,
        empty=f"{label}: no data yet",
        css=f"chart {tone}",
    )


def bar_chart(
    bars: Sequence[tuple[str, Number]], *, label: str, unit: str = "", width: int = 640, height: int = 200
) -> str:
    """Bars over labelled values (``(x label, y)``, oldest first); a loss
    hangs below the zero line in red."""
    title = f"{label} ({unit.strip()})" if unit.strip() else label
    return charts.bar_chart(
        [x for x, _ in bars],
        [charts.Series(label, [y for _, y in bars], UP)],
        title=title,
        width=width,
        height=height,
        empty=f"{label}: no data yet",
        css="chart bars",
        negative_color=DOWN,
    )
