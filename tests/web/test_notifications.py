"""/me/notifications/: the API's list, paging, filter, read marks and
preferences through the same selectors and services, refusals said on the
page, another user's notification a 404."""

import re
from urllib.parse import unquote

import pytest
from django.test import Client

from copytrading.models import Notification
from copytrading.notifications import selectors
from copytrading.notifications.kinds import KINDS
from copytrading.notifications.models import NotificationPreference
from copytrading.notifications.services import Note, notify
from copytrading.web.notification_views import KIND_NAMES
from tests.factories import UserFactory, token_for

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def _notes(user, count: int, *, start: int = 0) -> list[int]:
    return notify(
        [
            Note(user.pk, "subscribed", f"subscribed:t{user.pk}:{n}", {"portfolio": f"P{n}", "amount": "100"})
            for n in range(start, start + count)
        ]
    )


def _ids_on(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-notification-id="(\d+)"', html)]


@pytest.fixture
def reader(client):
    user = UserFactory()
    client.force_login(user)
    return user


def test_anonymous_is_sent_to_log_in(client):
    for url in ["/me/notifications/", "/me/notifications/items/?ids=1"]:
        answer = client.get(url)
        assert answer.status_code == 302 and answer["Location"].startswith("/login/?next=")
    for url in ["/me/notifications/1/read/", "/me/notifications/read-all/", "/me/notifications/preferences/"]:
        assert client.post(url)["Location"].startswith("/login/?next=")


def test_the_list_newest_first_unread_marked_in_words_with_links_and_counts(client, reader):
    sub = notify(
        [
            Note(
                reader.pk,
                "subscribed",
                "subscribed:901",
                {"subscription_id": 901, "portfolio_id": 7, "portfolio": "Alpha & Co", "amount": "250"},
            )
        ]
    )[0]
    halted = notify(
        [Note(reader.pk, "copying_halted", "halt:x", {"portfolio_id": 7, "portfolio": "Alpha", "reason": "audit"})]
    )[0]
    bare = notify([Note(reader.pk, "risk.daily_loss_reset", "risk:r", {}, body="Your limit reset.")])[0]
    Notification.objects.filter(pk=bare).update(read_at=Notification.objects.get(pk=bare).created_at)
    notify([Note(UserFactory().pk, "subscribed", "subscribed:other", {"portfolio": "Not mine"})])

    answer = client.get("/me/notifications/")
    html = answer.content.decode()
    assert answer.status_code == 200
    assert _ids_on(html) == [bare, halted, sub]
    assert "Not mine" not in html
    row = re.search(rf'<li data-notification-id="{sub}" class="([^"]*)"', html).group(1)
    assert "unread" in row.split()
    assert "unread" not in re.search(rf'<li data-notification-id="{bare}" class="([^"]*)"', html).group(1).split()
    assert html.count('<span class="visually-hidden">Unread: </span>') == 2
    assert html.count('data-action="read"') == 2  # not on the read one
    assert '<a href="/me/copies/">You now copy Alpha &amp; Co</a>' in html  # a copy: my copies
    assert '<a href="/portfolios/7/">Copying is halted</a>' in html  # a portfolio only: its page
    assert "2 unread" in html and 'id="unread-count" data-count="2"' in html  # the page and the nav badge
    assert " UTC</time>" in html  # times through `when`, in the reader's zone
    assert "data-live-status" in html and 'id="read-all"' in html and 'id="preferences"' in html


def test_load_more_pages_with_the_apis_cursors(client, reader, api):
    ids = _notes(reader, 25)
    html = client.get("/me/notifications/").content.decode()
    assert _ids_on(html) == sorted(ids, reverse=True)[:20]
    cursor = re.search(r'\?cursor=([^"&]+)', html).group(1)
    more = client.get(f"/me/notifications/?cursor={cursor}", **HTMX)
    rest = more.content.decode()
    assert more.status_code == 200
    assert _ids_on(rest) == sorted(ids, reverse=True)[20:]
    assert 'id="more" hx-swap-oob="true"' in rest and 'id="load-more"' not in rest  # the last page
    # Without JavaScript "Load more" is a link to the next page.
    assert _ids_on(client.get(f"/me/notifications/?cursor={cursor}").content.decode()) == _ids_on(rest)
    # The same cursor the API gives out and takes.
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(reader)}")
    page = api.get("/api/v1/notifications", {"cursor": unquote(cursor), "limit": 20})
    assert [r["id"] for r in page.json()["results"]] == _ids_on(rest)


def test_a_tampered_cursor_or_filter_is_said_not_a_500(client, reader):
    _notes(reader, 2)
    more = client.get("/me/notifications/?cursor=nope", **HTMX)
    assert more.status_code == 400 and "The cursor is not one this list gave out." in more.content.decode()
    page = client.get("/me/notifications/?unread=maybe")
    assert page.status_code == 400 and "unread is one of true, false." in page.content.decode()
    assert len(_ids_on(page.content.decode())) == 2  # the list is still there


def test_the_unread_filter(client, reader):
    first, second = _notes(reader, 2)
    client.post(f"/me/notifications/{first}/read/")
    html = client.get("/me/notifications/?unread=true").content.decode()
    assert _ids_on(html) == [second]
    assert re.search(r'<a href="/me/notifications/\?unread=true" aria-current="true">Unread</a>', html)
    assert _ids_on(client.get("/me/notifications/").content.decode()) == [second, first]


def test_mark_one_read_with_htmx_and_the_counts_follow(client, reader):
    first, second = _notes(reader, 2)
    answer = client.post(f"/me/notifications/{first}/read/", **HTMX)
    html = answer.content.decode()
    assert answer.status_code == 200
    assert _ids_on(html) == [first] and "unread" not in re.search(r'class="([^"]*)"', html).group(1).split()
    assert 'data-action="read"' not in html
    assert 'id="unread-count" data-count="1" hx-swap-oob="true">1<' in html
    assert 'id="unread-total" data-count="1" hx-swap-oob="true">1 unread<' in html
    assert Notification.objects.get(pk=first).read_at is not None
    assert Notification.objects.get(pk=second).read_at is None
    marked_at = Notification.objects.get(pk=first).read_at
    assert client.post(f"/me/notifications/{first}/read/", **HTMX).status_code == 200  # again: no change
    assert Notification.objects.get(pk=first).read_at == marked_at
    # Without htmx: back to the list.
    answer = client.post(f"/me/notifications/{second}/read/", {"unread": "true"})
    assert answer.status_code == 302 and answer["Location"] == "/me/notifications/?unread=true"
    assert selectors.unread_count(reader) == 0


def test_another_users_notification_is_a_404_and_stays_unread(client, reader):
    theirs = _notes(UserFactory(), 1)[0]
    answer = client.post(f"/me/notifications/{theirs}/read/", **HTMX)
    assert answer.status_code == 404 and "does not exist or is not yours" in answer.content.decode()
    assert client.post(f"/me/notifications/{theirs}/read/").status_code == 404
    assert Notification.objects.get(pk=theirs).read_at is None
    assert client.post("/me/notifications/999999/read/").status_code == 404


def test_read_all_marks_every_one_and_then_nothing(client, reader):
    _notes(reader, 3)
    other = _notes(UserFactory(), 1)[0]
    answer = client.post("/me/notifications/read-all/")
    assert answer.status_code == 302 and answer["Location"] == "/me/notifications/"
    assert selectors.unread_count(reader) == 0
    assert Notification.objects.get(pk=other).read_at is None
    assert "Marked 3 notifications read." in client.get("/me/notifications/").content.decode()
    client.post("/me/notifications/read-all/")
    html = client.get("/me/notifications/").content.decode()
    assert "Nothing was unread." in html and 'class="notification severity-low unread"' not in html


def _preferences_form(user, **changes) -> dict:
    """The form as the page posts it: every kind, its boxes as shown."""
    prefs = selectors.preferences_of(user)
    in_app = [p["kind"] for p in prefs if p["in_app"]]
    email = [p["kind"] for p in prefs if p["email"]]
    for code, (app_on, mail_on) in changes.items():
        code = code.replace("__", ".")
        in_app = [k for k in in_app if k != code] + ([code] if app_on else [])
        email = [k for k in email if k != code] + ([code] if mail_on else [])
    return {"kind": [p["kind"] for p in prefs], "in_app": in_app, "email": email}


def test_every_kind_has_a_name_on_the_page():
    assert set(KIND_NAMES) == set(KINDS)


def test_the_preferences_form_shows_every_kind_labelled_by_its_name(client, reader):
    html = client.get("/me/notifications/").content.decode()
    assert (
        '<label for="id_in_app-subscribed"><span class="visually-hidden">A copy started: </span>in-app</label>' in html
    )
    assert 'id="id_email-risk-margin-call" checked' in html  # high: e-mailed by default
    assert 'id="id_email-subscribed">' in html  # low: not
    assert "(not sent at present: turned off for everyone)" in html  # trade_copied


def test_preferences_are_saved_by_the_service_and_take_effect(client, reader):
    form = _preferences_form(reader, subscribed=(False, True), risk__margin_call=(True, False))
    answer = client.post("/me/notifications/preferences/", form)
    assert answer.status_code == 302 and answer["Location"] == "/me/notifications/#preferences"
    prefs = {p["kind"]: (p["in_app"], p["email"]) for p in selectors.preferences_of(reader)}
    assert prefs["subscribed"] == (False, True)
    assert prefs["risk.margin_call"] == (True, False)
    assert prefs["closed_in_profit"] == (True, False)  # unchanged
    html = client.get("/me/notifications/").content.decode()
    assert "Preferences saved." in html
    assert 'id="id_in_app-subscribed">' in html and 'id="id_email-subscribed" checked' in html
    # The effect: a "subscribed" note is now hidden from the list.
    _notes(reader, 1)
    assert _ids_on(client.get("/me/notifications/").content.decode()) == []


def test_an_unknown_kind_is_refused_above_the_form_and_nothing_changes(client, reader):
    form = _preferences_form(reader, subscribed=(False, False))
    form["kind"] = [*form["kind"], "no.such.kind"]
    answer = client.post("/me/notifications/preferences/", form)
    html = answer.content.decode()
    assert answer.status_code == 400
    assert re.search(r'id="errors-preferences"[^>]*>\s*<li>&#x27;no.such.kind&#x27; is not a notification kind', html)
    assert 'aria-describedby="errors-preferences"' in html
    assert 'id="id_in_app-subscribed">' in html  # what was ticked is kept on the form
    assert not NotificationPreference.objects.filter(user=reader).exists()
    form["kind"] = ["x" * 51]
    answer = client.post("/me/notifications/preferences/", form)
    assert answer.status_code == 400 and "Ensure this field has no more than 50 characters." in answer.content.decode()
    assert not NotificationPreference.objects.filter(user=reader).exists()


def test_every_write_needs_the_csrf_token(client, reader):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(reader)
    first = _notes(reader, 1)[0]
    assert strict.post(f"/me/notifications/{first}/read/", **HTMX).status_code == 403
    assert strict.post("/me/notifications/read-all/").status_code == 403
    form = _preferences_form(reader, subscribed=(False, False))
    assert strict.post("/me/notifications/preferences/", form).status_code == 403
    assert selectors.unread_count(reader) == 1
    assert not NotificationPreference.objects.filter(user=reader).exists()
    assert strict.get("/me/notifications/").status_code == 200
    assert client.post("/me/notifications/").status_code == 405  # the page itself is only read


def test_the_live_rows_are_drawn_like_the_page_and_only_ones_own(client, reader):
    mine = _notes(reader, 2)
    theirs = _notes(UserFactory(), 1)[0]
    answer = client.get(f"/me/notifications/items/?ids={mine[0]},{mine[1]},{theirs}")
    assert answer.status_code == 200
    assert _ids_on(answer.content.decode()) == [mine[1], mine[0]]
    assert client.get("/me/notifications/items/?ids=1,x").status_code == 400
    assert client.get("/me/notifications/items/?ids=²").status_code == 400  # a digit to str.isdigit, not to int()
    assert client.get("/me/notifications/items/").status_code == 400
    assert client.get("/me/notifications/items/?ids=" + ",".join(["1"] * 51)).status_code == 400
