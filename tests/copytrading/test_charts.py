"""copytrading.charts: valid SVG, every text escaped, empty data drawn."""

from decimal import Decimal
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copytrading.charts import Series, bar_chart, line_chart, sparkline

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ElementTree.Element:
    root = ElementTree.fromstring(svg)  # raises on anything but well-formed XML
    assert root.tag == f"{SVG}svg"
    return root


def test_a_line_chart_draws_one_line_per_series():
    svg = line_chart(
        ["10:00", "10:01", "10:02"],
        [Series("p95", [Decimal("0.5"), Decimal("1.25"), Decimal("0.75")]), Series("p50", [1, 2, 3])],
        title="Latency",
    )
    root = _parse(svg)
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2
    assert len(lines[0].get("points").split()) == 3
    assert root.find(f"{SVG}title").text == "Latency"


def test_a_gap_breaks_the_line():
    root = _parse(line_chart(["a", "b", "c", "d", "e"], [Series("s", [1, 2, None, 4, 5])], title="t"))
    assert [len(p.get("points").split()) for p in root.findall(f"{SVG}polyline")] == [2, 2]


def test_bars_stack_per_label():
    root = _parse(bar_chart(["a", "b"], [Series("x", [1, 0]), Series("y", [3, 2])], title="Bars", height=118))
    rects = [r for r in root.findall(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(rects) == 3  # a: x and y, b: y only (a zero draws nothing)
    # The highest total (4) spans the plot (118 - 18 - 18 = 82 px): x 1/4, y 3/4.
    heights = sorted(float(r.get("height")) for r in rects)
    assert heights == [20.5, 41.0, 61.5]


def test_stacked_negative_bars_are_refused_one_series_hangs_below_zero():
    with pytest.raises(ValueError):
        bar_chart(["a"], [Series("x", [-1]), Series("y", [2])], title="t")
    root = _parse(bar_chart(["a", "b"], [Series("x", [3, -1])], title="Signed", height=118, negative_color="#c00"))
    rects = [r for r in root.findall(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    # The span is -1..3 over 82 px: 3 is 61.5 px above zero, -1 is 20.5 px below it, in its own colour.
    assert [(float(r.get("height")), r.get("fill")) for r in rects] == [(61.5, "#417690"), (20.5, "#c00")]
    assert float(rects[1].get("y")) == float(rects[0].get("y")) + 61.5


def test_every_text_is_escaped():
    evil = '<script>alert("x")</script>&'
    for svg in (
        line_chart([evil, "b"], [Series(evil, [1, 2]), Series("other", [2, 1])], title=evil),
        bar_chart([evil], [Series(evil, [1])], title=evil),
        sparkline([1, 2], title=evil),
        line_chart([], [], title=evil, empty=evil),
    ):
        assert "<script>" not in svg
        texts = [el.text or "" for el in _parse(svg).iter()]
        assert any(evil in text for text in texts)  # shown as text, intact


@pytest.mark.parametrize(
    "draw",
    [
        lambda: line_chart([], [], title="t"),
        lambda: line_chart(["a"], [Series("s", [None])], title="t"),
        lambda: bar_chart(["a", "b"], [Series("s", [0, 0])], title="t"),
        lambda: sparkline([], title="t"),
    ],
)
def test_empty_data_draws_a_message(draw):
    root = _parse(draw())
    assert [t.text for t in root.findall(f"{SVG}text")] in (["No data"], ["—"])


numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False, places=8),
)


@given(st.lists(st.one_of(numbers, st.none()), min_size=1, max_size=50))
def test_any_values_draw_a_well_formed_line_chart(values):
    labels = [str(i) for i in range(len(values))]
    _parse(line_chart(labels, [Series("s", values)], title="t"))
    present = [v for v in values if v is not None]
    if len(present) >= 2:
        _parse(sparkline(present, title="t"))


@given(st.lists(st.decimals(min_value=0, max_value=10**9, places=8), min_size=1, max_size=40))
def test_any_non_negative_values_draw_well_formed_bars(values):
    _parse(bar_chart([str(i) for i in range(len(values))], [Series("s", values)], title="t"))
