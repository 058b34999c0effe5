"""Small charts drawn server-side as inline SVG: a line chart, a (stacked)
bar chart and a sparkline, each returned as one escaped SVG string. No
JavaScript, no CDN: the admin dashboard embeds them, and the client pages
through their presets (copytrading/web/charts.py). Pure: no Django.

Values may be Decimal, int or float; they only become pixel coordinates here
(floats rounded to 0.1 px), never money. Every text (title, labels, series
names) is escaped, so a portfolio named ``<script>`` draws as text.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

Number = Decimal | int | float

# Colours that read on the admin's light and dark themes.
PALETTE = ("#417690", "#c9a227", "#ba2121", "#6b6b6b", "#3a9a5b", "#8e5ea2")
FONT = 'font-family="sans-serif" font-size="10"'


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[Number | None]  # one per label; None: no point there
    color: str | None = None


def _px(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _label(value: Number) -> str:
    """A compact axis label: 1234567 -> 1.2M, 0.00012 -> 0.00012."""
    v = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    size = abs(v)
    for limit, suffix in ((Decimal(10) ** 9, "G"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "k")):
        if size >= limit:
            return f"{(v / limit).quantize(Decimal('0.1')).normalize():f}{suffix}"
    if size >= 1 or v == 0:
        return f"{v.quantize(Decimal('0.01')).normalize():f}"
    return f"{v.normalize():.2g}" if size < Decimal("0.001") else f"{v.quantize(Decimal('0.0001')).normalize():f}"


def _open(width: int, height: int, title: str, css: str = "chart") -> list[str]:
    t = escape(title)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(css)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{t}">',
        f"<title>{t}</title>",
    ]


def _empty(width: int, height: int, title: str, message: str, css: str = "chart") -> str:
    parts = _open(width, height, title, css)
    parts.append(
        f'<text x="{width // 2}" y="{height // 2}" text-anchor="middle" {FONT} fill="#6b6b6b">{escape(message)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _bounds(values: Sequence[Number], *, zero: bool) -> tuple[float, float]:
    low, high = float(min(values)), float(max(values))
    if zero:
        low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high = low + 1.0
    return low, high


def _axes(parts: list[str], *, left: int, top: int, right: int, bottom: int, low: float, high: float) -> None:
    parts.append(
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999" stroke-width="1"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#999" stroke-width="1"/>'
    )
    for value, y in ((high, top), (low, bottom)):
        parts.append(
            f'<text x="{left - 4}" y="{_px(y + 3)}" text-anchor="end" {FONT} fill="#6b6b6b">{_label(value)}</text>'
        )


def _x_labels(
    parts: list[str], labels: Sequence[str], xs: Sequence[float], *, bottom: int, every: int, edge: float
) -> None:
    last = len(labels) - 1
    for i, (label, x) in enumerate(zip(labels, xs, strict=True)):
        # Every ``every``-th label, and the last one unless it would touch the one before.
        if i % every == 0 or (i == last and last % every > every // 2):
            # A label centred near the right edge would leave the picture: it ends there instead.
            anchor = "end" if x + 12 > edge else "middle"
            parts.append(
                f'<text x="{_px(x)}" y="{bottom + 12}" text-anchor="{anchor}" {FONT} fill="#6b6b6b">'
                f"{escape(label)}</text>"
            )


def _legend(parts: list[str], series: Sequence[Series], *, left: int, y: int) -> None:
    x = left
    for i, s in enumerate(series):
        color = escape(s.color or PALETTE[i % len(PALETTE)])
        parts.append(f'<rect x="{x}" y="{y - 8}" width="8" height="8" fill="{color}"/>')
        parts.append(f'<text x="{x + 11}" y="{y}" {FONT}>{escape(s.name)}</text>')
        x += 18 + 6 * len(s.name)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 480,
    height: int = 160,
    empty: str = "No data",
    css: str = "chart",
) -> str:
    """One line per series over shared x labels (equally spaced); a None
    value breaks the line. The y axis spans the data and zero."""
    values = [v for s in series for v in s.values if v is not None]
    if not labels or not values:
        return _empty(width, height, title, empty, css)
    left, top, right, bottom = 44, 18, width - 8, height - 18
    low, high = _bounds(values, zero=True)
    step = (right - left) / max(len(labels) - 1, 1)
    xs = [left + i * step for i in range(len(labels))]

    def y(v: Number) -> float:
        return bottom - (float(v) - low) / (high - low) * (bottom - top)

    parts = _open(width, height, title, css)
    _axes(parts, left=left, top=top, right=right, bottom=bottom, low=low, high=high)
    for i, s in enumerate(series):
        color = escape(s.color or PALETTE[i % len(PALETTE)])
        runs: list[list[str]] = [[]]
        for x, v in zip(xs, s.values, strict=True):
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{_px(x)},{_px(y(v))}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
            elif run:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(run)}"/>')
    _x_labels(parts, labels, xs, bottom=bottom, every=max(len(labels) // 6, 1), edge=right)
    if len(series) > 1:
        _legend(parts, series, left=left, y=11)
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 480,
    height: int = 160,
    empty: str = "No data",
    css: str = "chart",
    negative_color: str = PALETTE[2],
) -> str:
    """Stacked bars, one per label, one segment per series (None counts as
    0). One series may go below zero: those bars hang from the zero line in
    ``negative_color``; stacked series draw non-negative values only."""
    values = [float(v or 0) for s in series for v in s.values]
    if not labels or not series or not any(values):
        return _empty(width, height, title, empty, css)
    if len(series) > 1 and any(v < 0 for v in values):
        raise ValueError("stacked bars draw non-negative values")
    totals = [sum((float(s.values[i] or 0) for s in series), 0.0) for i in range(len(labels))]
    left, top, right, bottom = 44, 18, width - 8, height - 18
    low, high = _bounds([*totals, 0.0], zero=True)
    slot = (right - left) / len(labels)
    bar = max(slot * 0.8, 1.0)
    zero = bottom - (0.0 - low) / (high - low) * (bottom - top)
    parts = _open(width, height, title, css)
    _axes(parts, left=left, top=top, right=right, bottom=bottom, low=low, high=high)
    if low < 0:
        parts.append(
            f'<line x1="{left}" y1="{_px(zero)}" x2="{right}" y2="{_px(zero)}" stroke="#999" stroke-width="1"/>'
        )
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar) / 2
        base = zero
        for k, s in enumerate(series):
            v = float(s.values[i] or 0)
            if v == 0:
                continue
            h = abs(v) / (high - low) * (bottom - top)
            color = escape(s.color or PALETTE[k % len(PALETTE)]) if v > 0 else escape(negative_color)
            y = base - h if v > 0 else zero
            parts.append(
                f'<rect x="{_px(x)}" y="{_px(y)}" width="{_px(bar)}" height="{_px(h)}" fill="{color}">'
                f"<title>{escape(label)} · {escape(s.name)}: {escape(_label(s.values[i] or 0))}</title></rect>"
            )
            if v > 0:
                base -= h
    centres = [left + (i + 0.5) * slot for i in range(len(labels))]
    _x_labels(parts, labels, centres, bottom=bottom, every=max(len(labels) // 6, 1), edge=right)
    if len(series) > 1:
        _legend(parts, series, left=left, y=11)
    parts.append("</svg>")
    return "".join(parts)


def sparkline(
    values: Sequence[Number],
    *,
    title: str,
    width: int = 120,
    height: int = 28,
    color: str = PALETTE[0],
    css: str = "chart",
) -> str:
    """A tiny line without axes or labels (a trend beside a figure)."""
    if len(values) < 2:
        return _empty(width, height, title, "—", css)
    low, high = _bounds(values, zero=False)
    step = (width - 4) / (len(values) - 1)
    points = " ".join(
        f"{_px(2 + i * step)},{_px(height - 2 - (float(v) - low) / (high - low) * (height - 4))}"
        for i, v in enumerate(values)
    )
    parts = _open(width, height, title, css)
    parts.append(f'<polyline fill="none" stroke="{escape(color)}" stroke-width="1.5" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)
