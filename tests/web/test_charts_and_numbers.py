"""The server-drawn charts and the pages' number formats (pure)."""

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils import timezone

from copytrading.templatetags import web
from copytrading.web import charts


def test_money_has_separators_currency_and_a_real_minus():
    assert web.money(Decimal("1234.5")) == "1,234.50 USDT"
    assert web.money("-0.004") == "0.00 USDT"
    assert web.money(Decimal("-1234567.891")) == "\u22121,234,567.89 USDT"
    assert web.signed_money("12.3") == "+12.30 USDT"
    assert web.signed_money("0") == "0.00 USDT"
    assert web.money(None) == web.money("nan") == web.money("x") == "—"


def test_percents_quantities_and_tones():
    assert web.pct("7.6") == "7.60 %"
    assert web.signed_pct("-3.456") == "\u22123.46 %"
    assert web.qty(Decimal("0.00150000")) == "0.0015"
    assert web.qty(Decimal("65000.50")) == "65,000.5"
    assert web.qty(Decimal("100")) == "100"
    assert (web.tone("1"), web.tone("-1"), web.tone("0"), web.tone(None)) == ("up", "down", "flat", "flat")


def test_times_show_in_the_readers_zone():
    moment = datetime(2026, 12, 5, 21, 30, tzinfo=UTC)
    with timezone.override(ZoneInfo("Europe/Paris")):
        assert web.when(moment) == "2026-12-05 22:30 CET"
    assert web.when(None) == "—"


def test_sparkline_and_charts_scale_and_label():
    up = charts.sparkline([1, 2, 3], label="Equity <30 d>")
    assert 'class="spark up"' in up and "Equity &lt;30 d&gt;" in up and "<polyline" in up
    assert 'class="spark down"' in charts.sparkline([3, 1], label="x")
    assert "<polyline" not in charts.sparkline([5], label="x")  # one point: no line, no division by zero
    line = charts.line_chart([("Dec 1", -5), ("Dec 2", 10)], label="PnL", unit=" USDT")
    assert 'class="chart up"' in line and "Dec 1" in line and "PnL (USDT)" in line
    assert "PnL: no data yet" in charts.line_chart([], label="PnL")
    bars = charts.bar_chart([("Mon", Decimal("12.5")), ("Tue", Decimal("-3"))], label="Earnings")
    assert bars.count("<rect") == 2 and "Tue · Earnings: -3" in bars and charts.DOWN in bars
    flat = charts.line_chart([("a", 1), ("b", 1)], label="flat")  # equal values: no division by zero
    assert "<polyline" in flat
