"""Charts drawn on the server as SVG: no JavaScript, nothing to download, the
same picture in every browser and in a screenshot (docs/decisions.md §97).

Pure: numbers in, markup out (the caller marks it safe). Every chart scales
to its container (``viewBox``, width 100%) and carries a ``<title>`` and
``role="img"`` for screen readers.
"""

from collections.abc import Sequence
from decimal import Decimal
from html import escape

Number = Decimal | float | int


def _scale(values: Sequence[float], low: float, high: float, size: float, pad: float) -> list[float]:
    span = (high - low) or 1.0
    return [pad + (size - 2 * pad) * (v - low) / span for v in values]


def _points(xs: Sequence[float], ys: Sequence[float]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def sparkline(values: Sequence[Number], *, label: str, width: int = 120, height: int = 32) -> str:
    """A small line of ``values`` (oldest first); green when the last is at or
    above the first, red below. Fewer than two values: a flat grey line."""
    v = [float(x) for x in values]
    if len(v) < 2:
        mid = height / 2
        return (
            f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>"
            f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" class="flat"/></svg>'
        )
    xs = _scale(list(range(len(v))), 0, len(v) - 1, width, 1)
    ys = [height - y for y in _scale(v, min(v), max(v), height, 2)]
    tone = "up" if v[-1] >= v[0] else "down"
    return (
        f'<svg class="spark {tone}" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img"'
        f' aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f'<polyline points="{_points(xs, ys)}" fill="none"/></svg>'
    )


def line_chart(
    points: Sequence[tuple[str, Number]],
    *,
    label: str,
    unit: str = "",
    width: int = 640,
    height: int = 200,
    area: bool = True,
) -> str:
    """A line over labelled points (``(x label, y)``, oldest first): the first
    and last x labels under it, the highest and lowest y beside it, a zero line
    when the values cross zero."""
    if not points:
        return f'<p class="muted chart-empty">{escape(label)}: no data yet.</p>'
    v = [float(y) for _, y in points]
    low, high = min(v), max(v)
    if low == high:
        low, high = low - 1, high + 1
    left, bottom = 56.0, 22.0
    plot_w, plot_h = width - left - 8, height - bottom - 8
    xs = [left + x for x in _scale(list(range(len(v))), 0, max(len(v) - 1, 1), plot_w, 0)]
    ys = [8 + plot_h - y for y in _scale(v, low, high, plot_h, 0)]
    tone = "up" if v[-1] >= v[0] else "down"
    parts = [
        f'<svg class="chart {tone}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<text class="axis" x="{left - 6}" y="14" text-anchor="end">{_short(high)}{escape(unit)}</text>',
        f'<text class="axis" x="{left - 6}" y="{8 + plot_h}" text-anchor="end">{_short(low)}{escape(unit)}</text>',
        f'<text class="axis" x="{left}" y="{height - 4}">{escape(points[0][0])}</text>',
        f'<text class="axis" x="{width - 8}" y="{height - 4}" text-anchor="end">{escape(points[-1][0])}</text>',
        f'<line class="frame" x1="{left}" y1="{8 + plot_h}" x2="{width - 8}" y2="{8 + plot_h}"/>',
    ]
    if low < 0 < high:
        zero = 8 + plot_h - _scale([0.0], low, high, plot_h, 0)[0]
        parts.append(f'<line class="zero" x1="{left}" y1="{zero:.1f}" x2="{width - 8}" y2="{zero:.1f}"/>')
    if area and len(v) > 1:
        base = 8 + plot_h
        parts.append(f'<polygon class="area" points="{xs[0]:.1f},{base} {_points(xs, ys)} {xs[-1]:.1f},{base}"/>')
    parts.append(f'<polyline class="line" points="{_points(xs, ys)}" fill="none"/>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    bars: Sequence[tuple[str, Number]], *, label: str, unit: str = "", width: int = 640, height: int = 200
) -> str:
    """Bars over labelled values (``(x label, y)``, oldest first); negative
    bars hang below the zero line. Each bar's ``<title>`` holds its figures."""
    if not bars:
        return f'<p class="muted chart-empty">{escape(label)}: no data yet.</p>'
    v = [float(y) for _, y in bars]
    low, high = min(0.0, *v), max(0.0, *v)
    if low == high:
        high = 1.0
    left, bottom = 56.0, 22.0
    plot_w, plot_h = width - left - 8, height - bottom - 8
    zero = 8 + plot_h - _scale([0.0], low, high, plot_h, 0)[0]
    step = plot_w / len(v)
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<text class="axis" x="{left - 6}" y="14" text-anchor="end">{_short(high)}{escape(unit)}</text>',
        f'<text class="axis" x="{left - 6}" y="{8 + plot_h}" text-anchor="end">{_short(low)}{escape(unit)}</text>',
        f'<text class="axis" x="{left}" y="{height - 4}">{escape(bars[0][0])}</text>',
        f'<text class="axis" x="{width - 8}" y="{height - 4}" text-anchor="end">{escape(bars[-1][0])}</text>',
        f'<line class="zero" x1="{left}" y1="{zero:.1f}" x2="{width - 8}" y2="{zero:.1f}"/>',
    ]
    for i, ((name, _), value) in enumerate(zip(bars, v, strict=True)):
        y = 8 + plot_h - _scale([value], low, high, plot_h, 0)[0]
        top, h = min(y, zero), abs(zero - y)
        tone = "up" if value >= 0 else "down"
        parts.append(
            f'<rect class="{tone}" x="{left + i * step + step * 0.15:.1f}" y="{top:.1f}"'
            f' width="{step * 0.7:.1f}" height="{max(h, 0.5):.1f}">'
            f"<title>{escape(name)}: {value:,.2f}{escape(unit)}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(value: float) -> str:
    """An axis label: 1,234 / 12.5k / 3.4M / 0.25."""
    size = abs(value)
    if size >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if size >= 10_000:
        return f"{value / 1_000:.1f}k"
    if size >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"
