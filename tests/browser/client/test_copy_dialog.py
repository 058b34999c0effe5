"""The copy dialog in Chromium, on the whole stack: /portfolios/<id>/copy/ as a
full page (the portfolio page loads the same form into its dialog); the
preview follows the template, a bad amount is said under the field, bad
custom settings next to theirs, the copy lands on /me/copies/; no horizontal
scroll at phone width."""

from decimal import Decimal

from playwright.sync_api import expect

from copytrading.models import Instrument
from copytrading.services import price_set, wallet_deposit
from followers.models import Subscription
from portfolios.models import PasscodeThrottle
from portfolios.services import (
    portfolio_create,
    portfolio_fund,
    portfolio_order_place,
    portfolio_position_close,
    portfolio_update,
)
from tests.browser.conftest import browser_marks
from tests.factories import PASSWORD, UserFactory

pytestmark = browser_marks
D = Decimal
ETH_PERP = "ETH/USDT:USDT"


def traded_portfolio(instruments):
    """A leader who bought 1 ETH at 3,200 and closed it at 3,520."""
    leader = UserFactory()
    wallet_deposit(user=leader, amount=D("11000"))
    portfolio = portfolio_create(leader=leader, name="Steady ETH", profit_share_pct=D("20"))
    portfolio_fund(portfolio=portfolio, amount=D("10000"))
    eth = Instrument.objects.get(symbol=ETH_PERP)
    price_set(instrument=eth, price=D("3200"))
    portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=5)
    price_set(instrument=eth, price=D("3520"))
    (position,) = portfolio.trading_account.positions.filter(status="open")
    portfolio_position_close(portfolio=portfolio, position_id=position.pk)
    return portfolio


def log_in(page, user, next_path: str) -> None:
    page.goto(f"/login/?next={next_path}")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"**{next_path}")


def attempts(user) -> int:
    """The reader's wrong passcodes counted (portfolios/passcodes.py)."""
    row = PasscodeThrottle.objects.filter(scope=PasscodeThrottle.Scope.USER, subject_id=user.pk).first()
    return row.attempts if row else 0


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_preview_then_copy(page, shot, instruments):
    portfolio = traded_portfolio(instruments)
    user = UserFactory()
    wallet_deposit(user=user, amount=D("5000"))
    path = f"/portfolios/{portfolio.pk}/copy/"
    log_in(page, user, path)
    expect(page.locator("form#copy-form")).to_be_visible()
    expect(page.locator("#preview-empty")).to_be_visible()
    expect(page.locator("#id_template")).to_have_value("balanced")
    expect(page.locator("#custom-settings")).to_be_hidden()

    # The amount (typed: keyup) brings the preview: half the leader's size, a profit.
    page.locator("#id_amount").press_sequentially("5000")
    expect(page.locator("#preview-pnl")).to_contain_text("+")
    expect(page.locator("#preview-fees")).to_contain_text("USDT")
    balanced = page.locator("#preview-pnl").inner_text()
    expect(page.locator("#preview-counts")).to_contain_text("2 copied, 0 skipped, 0 rejected.")
    expect(page.locator("#preview svg")).to_be_visible()
    shot(page, "preview-balanced")

    # Another template, another preview: the leader's full size.
    page.select_option("#id_template", label="Aggressive")
    expect(page.locator("#preview-pnl")).not_to_have_text(balanced)
    expect(page.locator("#preview-roi")).to_contain_text("+")
    shot(page, "preview-aggressive")

    # Custom settings: their fields show; a bad one is said next to it.
    page.select_option("#id_template", label="Custom settings")
    expect(page.locator("#custom-settings")).to_be_visible()
    page.select_option("#id_sizing_model", "progressive")
    page.locator("#id_multiplier").press_sequentially("7")
    expect(page.locator("#errors-multiplier")).to_be_visible()
    expect(page.locator("#id_multiplier")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#preview-roi")).to_have_count(0)
    shot(page, "bad-setting")
    page.locator("#id_multiplier").fill("")
    page.locator("#id_multiplier").press_sequentially("0.25")
    expect(page.locator("#errors-multiplier")).to_have_count(0)
    expect(page.locator("#preview-pnl")).to_contain_text("+")

    # A bad amount: the server's message under the field, from the preview...
    page.locator("#id_amount").fill("")
    page.locator("#id_amount").press_sequentially("abc")
    expect(page.locator("#id_amount + .msgs #errors-amount")).to_contain_text("valid number")
    expect(page.locator("#id_amount")).to_have_attribute("aria-invalid", "true")
    # ...and from the submit, which creates nothing.
    page.click("#copy-submit")
    expect(page.locator("#errors-amount")).to_contain_text("valid number")
    assert not Subscription.objects.filter(follower=user).exists()
    shot(page, "bad-amount")

    # Phone width: nothing scrolls sideways.
    page.set_viewport_size({"width": 375, "height": 800})
    assert no_horizontal_scroll(page)
    shot(page, "phone")
    page.set_viewport_size({"width": 1366, "height": 900})

    # From the keyboard: the template, then Enter in the amount submits.
    page.focus("#id_template")
    page.select_option("#id_template", "balanced")
    page.locator("#id_amount").fill("2000")
    page.locator("#id_amount").press("Enter")
    page.wait_for_url("**/me/copies/")
    expect(page.locator(".flash")).to_contain_text("You now copy Steady ETH.")
    subscription = Subscription.objects.get(follower=user, portfolio=portfolio)
    assert (subscription.template_ref, subscription.invested) == ("balanced", D("2000"))
    shot(page, "copied")


def test_the_form_as_a_dialog_fragment_on_another_page(page, shot, instruments):
    """What the portfolio page does (built beside this one): the form loaded by
    htmx into <dialog id="copy-dialog">. A private portfolio: the passcode is
    checked only when it changes (a wrong one counted once, not on every
    preview), its refusal next to its field, then the copy."""
    portfolio = traded_portfolio(instruments)
    portfolio_update(portfolio=portfolio, is_public=False, passcode="12345678")
    user = UserFactory()
    wallet_deposit(user=user, amount=D("5000"))
    log_in(page, user, "/")
    page.evaluate(
        """(url) => {
            const dialog = document.createElement("dialog");
            dialog.id = "copy-dialog";
            document.body.append(dialog);
            return htmx.ajax("GET", url, {target: "#copy-dialog", swap: "innerHTML"}).then(() => dialog.showModal());
        }""",
        f"/portfolios/{portfolio.pk}/copy/",
    )
    dialog = page.locator("dialog#copy-dialog")
    expect(dialog.locator("form#copy-form")).to_be_visible()
    expect(dialog.locator("#copy-title")).to_have_text("Copy a private portfolio")
    dialog.locator("#id_amount").press_sequentially("2000")
    # No passcode yet: the preview asks for it (nothing counted).
    expect(dialog.locator("#preview-passcode")).to_have_text("Enter the passcode to see the preview.")
    expect(dialog.locator("#errors-passcode")).to_have_count(0)

    # One digit wrong: checked once, when the field changes, and said next to it...
    dialog.locator("#id_passcode").fill("12345670")
    dialog.locator("#id_passcode").press("Tab")
    expect(dialog.locator("#errors-passcode")).to_contain_text("The passcode is not right.")
    expect(dialog.locator("#id_passcode")).to_have_attribute("aria-invalid", "true")
    shot(page, "wrong-passcode")
    # ...not again as the other fields change (it used to be, until the lockout)...
    for amount in ("2100", "2200", "2300", "2400"):
        dialog.locator("#id_amount").fill(amount)
        dialog.locator("#id_amount").press("Tab")
        expect(dialog.locator("#preview-passcode")).to_be_visible()
    dialog.locator("#id_days").select_option("7")
    expect(dialog.locator("#preview-passcode")).to_be_visible()
    # ...nor by Copy, until it is edited: the field gets the focus back.
    dialog.locator("#copy-submit").click()
    expect(dialog.locator("#id_passcode")).to_be_focused()
    page.wait_for_timeout(500)
    assert attempts(user) == 1

    # Enter in the field both changes it and submits: one attempt, the subscribe's.
    dialog.locator("#id_passcode").fill("00000000")
    dialog.locator("#id_passcode").press("Enter")
    expect(dialog.locator("#errors-passcode")).to_contain_text("The passcode is not right.")
    expect(dialog.locator("#id_passcode")).to_have_value("")
    page.wait_for_timeout(500)
    assert attempts(user) == 2

    # The right one: the preview runs, and keeps running as the amount changes.
    dialog.locator("#id_amount").fill("2000")
    dialog.locator("#id_passcode").fill("12345678")
    dialog.locator("#id_passcode").press("Tab")
    expect(dialog.locator("#preview-pnl")).to_contain_text("USDT")
    expect(dialog.locator("#errors-passcode")).to_have_count(0)
    expect(dialog.locator("#preview-equity")).to_contain_text("2,1")
    dialog.locator("#id_amount").fill("2500")
    dialog.locator("#id_amount").press("Tab")
    expect(dialog.locator("#preview-equity")).to_contain_text("2,6")
    shot(page, "preview-in-dialog")
    dialog.locator("#copy-submit").click()
    page.wait_for_url("**/me/copies/")
    assert Subscription.objects.get(follower=user, portfolio=portfolio).invested == D("2500")
    assert attempts(user) == 2
