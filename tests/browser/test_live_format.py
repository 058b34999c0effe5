"""live.js writes numbers exactly as the template filters do.

A live update replaces text the server drew: were the two to round apart, a
figure would change on the first tick with nothing behind it (half a cent of
loss shown as a gain). Chromium runs the real live.js on a blank page (no
server, no database) and every value of the table goes through both sides.
"""

from pathlib import Path

import pytest

from copytrading.templatetags import web
from tests.browser.conftest import CHROMIUM, HAVE_CHROMIUM

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason=f"needs Chromium at {CHROMIUM}: apt-get install chromium"),
]

LIVE_JS = Path(__file__).resolve().parents[2] / "copytrading" / "static" / "web" / "live.js"

VALUES = [
    # ties: half to even, never half away from zero
    "1.005",
    "1.00500000",
    "1.015",
    "1.025",
    "2.675",
    "0.125",
    "-0.125",
    "0.135",
    "1.00500001",
    "-1.00500001",
    "99.995",
    "-999999.995",
    "0.994999999",
    # negatives that round to zero: no minus sign, no plus sign
    "-0.00500000",
    "-0.005",
    "-0.004",
    "-0.00000001",
    "0.00000001",
    "0.00499999",
    "0.005",
    "0.00500001",
    "-0.00500001",
    "0",
    "-0",
    "0.00000000",
    "-0.00000000",
    # grouping
    "1234.5",
    "-1234.5",
    "999.999",
    "-999.995",
    "1000",
    "1234567",
    "1234567890123.455",
    "-9876543210.12345678",
    "12345678901234567890.5",
    # 8 places, integers without a point, other spellings Decimal takes
    "65000.12345678",
    "0.00150000",
    "-42",
    "42",
    "100",
    "007.50",
    "+3.14159",
    ".5",
    "5.",
    " 12.345 ",
    "1E+3",
    "-1.5e-3",
    "1e-8",
    "2.5E-1",
    # JSON numbers (the stream sends strings, but a number must not differ)
    0,
    7,
    -3,
    0.125,
    2.675,
    -0.005,
    1234567.891,
    # not numbers: a dash
    None,
    "",
    " ",
    "abc",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "1.2.3",
    "1,000",
    ".",
    "-",
    "+",
    "1e",
    "0x10",
    True,
    False,
]

SCRIPT = """values => values.map(v => [
    Live.money(v), Live.money(v, null, true), Live.money(v, "EUR"), Live.money(v, "EUR", true),
    Live.pct(v), Live.pct(v, true), Live.qty(v), Live.tone(v),
])"""


def server_side(value) -> list[str]:
    return [
        web.money(value),
        web.signed_money(value),
        web.money(value, "EUR"),
        web.signed_money(value, "EUR"),
        web.pct(value),
        web.signed_pct(value),
        web.qty(value),
        web.tone(value),
    ]


@pytest.fixture
def blank(browser):
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("about:blank")
    page.add_script_tag(path=str(LIVE_JS))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def test_live_numbers_equal_the_template_filters(blank):
    live = blank.evaluate(SCRIPT, VALUES)
    differences = [
        (value, expected, got)
        for value, got in zip(VALUES, live, strict=True)
        if got != (expected := server_side(value))
    ]
    assert not differences, "\n".join(f"{v!r}: server {e} / live {g}" for v, e, g in differences)


def test_the_reviewers_cases(blank):
    """The two the review found, spelled out (a loss was shown as a gain)."""
    assert blank.evaluate('Live.money("-0.00500000")') == "0.00 USDT" == web.money("-0.00500000")
    assert blank.evaluate('Live.money("1.00500000", null, true)') == "+1.00 USDT" == web.signed_money("1.00500000")
    assert blank.evaluate('Live.money("-1234567.891")') == "\u22121,234,567.89 USDT"
    assert blank.evaluate('Live.qty("0.00150000")') == "0.0015"


# --- reconnecting ------------------------------------------------------------------

# A stand-in for the browser's WebSocket, set before live.js loads: the test
# closes it with the code it wants and counts the sockets live.js opens.
FAKE_SOCKET = """
window.sockets = [];
window.WebSocket = function (url) { this.url = url; this.readyState = 0; window.sockets.push(this); };
window.WebSocket.OPEN = 1;
window.WebSocket.prototype.send = function () {};
"""


@pytest.fixture
def faked(browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto("about:blank")
    page.set_content('<p data-live-status=""></p>')
    page.evaluate(FAKE_SOCKET)
    page.add_script_tag(path=str(LIVE_JS))
    page.evaluate('Live.subscribe("copies", function () {})')
    yield page
    context.close()


@pytest.mark.parametrize("code", [4001, 4029, 4400, 4404])
def test_no_reconnection_after_a_close_a_retry_cannot_mend(faked, code):
    faked.evaluate("code => sockets[0].onclose({code: code})", code)
    faked.wait_for_timeout(1500)  # longer than the first backoff (at most 500 ms)
    assert faked.evaluate("sockets.length") == 1
    assert faked.text_content("[data-live-status]") == "offline"
    faked.evaluate('Live.subscribe("positions", function () {})')  # a later subscriber does not reopen it
    assert faked.evaluate("sockets.length") == 1


@pytest.mark.parametrize("code", [1006, 1011, 4008, 4503])
def test_reconnects_after_a_passing_close_with_one_socket(faked, code):
    faked.evaluate("code => sockets[0].onclose({code: code})", code)
    assert faked.text_content("[data-live-status]") == "offline"
    faked.evaluate('Live.subscribe("positions", function () {})')  # waiting: the timer opens it, once
    faked.wait_for_function("sockets.length === 2", timeout=5000)
    faked.wait_for_timeout(600)
    assert faked.evaluate("sockets.length") == 2
    assert faked.text_content("[data-live-status]") == "connecting"
