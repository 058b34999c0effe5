"""/me/notifications/ in Chromium against the whole stack: a notification
written through ``notify`` in this process is pushed by the real stream and
appears at the top without a reload, the nav badge counting it; mark read
(htmx), mark all read, the preferences form; no horizontal scroll on a phone."""

from urllib.parse import urlsplit

from playwright.sync_api import expect

from copytrading.models import Notification
from copytrading.notifications import selectors
from copytrading.notifications.services import Note, notify
from tests.browser.conftest import browser_marks
from tests.factories import PASSWORD, UserFactory

pytestmark = browser_marks


def _log_in(page, user) -> None:
    page.goto("/login/?next=/me/notifications/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(lambda url: urlsplit(url).path == "/me/notifications/")


def _no_horizontal_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_notification_arrives_live_and_is_read(page, shot):
    user = UserFactory()
    first = notify([Note(user.pk, "subscribed", "subscribed:b1", {"portfolio": "Alpha", "amount": "100"})])[0]
    _log_in(page, user)
    rows = page.locator("#notifications [data-notification-id]")
    expect(rows).to_have_count(1)
    expect(page.locator("#unread-count")).to_have_text("1")
    expect(page.locator("[data-live-status]").first).to_have_attribute("data-live-status", "live")
    shot(page, "one-unread")

    # Written in this process: the stream pushes it to the open page.
    arrived = notify(
        [
            Note(
                user.pk,
                "copying_halted",
                "halt:b2",
                {"portfolio_id": 1, "portfolio": "Alpha", "subscription_id": 5, "reason": "an exchange outage"},
            )
        ]
    )[0]
    newest = page.locator(f'#notifications [data-notification-id="{arrived}"]')
    expect(newest).to_be_visible()
    expect(rows.first).to_have_attribute("data-notification-id", str(arrived))  # at the top
    expect(newest).to_have_class("notification severity-high unread")
    expect(newest).to_contain_text("halted by our staff: an exchange outage")
    expect(newest.locator("a")).to_have_attribute("href", "/me/copies/")
    expect(page.locator("#unread-count")).to_have_text("2")
    expect(page.locator("#unread-total")).to_have_text("2 unread")
    shot(page, "arrived-live")

    # Mark read from the keyboard: the row and both counts change, no reload.
    page.evaluate("window.notReloaded = true")
    newest.locator('[data-action="read"]').focus()
    page.keyboard.press("Enter")
    expect(newest).to_have_class("notification severity-high")
    expect(newest.locator('[data-action="read"]')).to_have_count(0)
    expect(newest).to_be_focused()  # the keyboard stays on the row
    expect(page.locator("#unread-count")).to_have_text("1")
    expect(page.locator("#unread-total")).to_have_text("1 unread")
    assert Notification.objects.get(pk=arrived).read_at is not None
    assert page.evaluate("window.notReloaded") is True
    shot(page, "marked-read")

    page.click("#read-all")
    expect(page.locator(".flash")).to_contain_text("Marked 1 notification read.")
    expect(page.locator("#notifications .unread")).to_have_count(0)
    expect(page.locator("#unread-count")).to_have_text("")
    assert Notification.objects.get(pk=first).read_at is not None

    # Preferences: "a copy started" off in-app, saved by the service.
    page.uncheck("#id_in_app-subscribed")
    page.click("#preferences-submit")
    expect(page.locator(".flash")).to_contain_text("Preferences saved.")
    expect(page.locator("#id_in_app-subscribed")).not_to_be_checked()
    prefs = {p["kind"]: p["in_app"] for p in selectors.preferences_of(user)}
    assert prefs["subscribed"] is False and prefs["copying_halted"] is True
    shot(page, "preferences-saved")


def test_the_page_at_phone_width(page, shot):
    user = UserFactory()
    notify(
        [
            Note(
                user.pk, "copy_error", f"exec:p{n}", {"portfolio": "A long portfolio name " * 3, "reason": "no margin"}
            )
            for n in range(21)
        ]
    )
    page.set_viewport_size({"width": 375, "height": 800})
    _log_in(page, user)
    rows = page.locator("#notifications [data-notification-id]")
    expect(rows).to_have_count(20)  # a page
    expect(page.locator("[data-live-status]").first).to_have_attribute("data-live-status", "live")
    _no_horizontal_scroll(page)
    shot(page, "phone", full_page=False)
    later = notify([Note(user.pk, "subscribed", "subscribed:p9", {"portfolio": "Beta", "amount": "5"})])[0]
    expect(page.locator(f'[data-notification-id="{later}"]')).to_be_visible()
    expect(page.locator("#unread-count")).to_have_text("22")
    _no_horizontal_scroll(page)
    page.click("#load-more")  # the API's next page, appended by htmx
    expect(rows).to_have_count(22)
    expect(page.locator("#load-more")).to_have_count(0)
    _no_horizontal_scroll(page)
    page.locator("#preferences").scroll_into_view_if_needed()
    shot(page, "phone-preferences", full_page=False)
