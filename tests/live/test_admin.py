"""The live settings in the back office: the record's page validates (a halt
needs a reason), saves through the services and is audited with the staff
user; portfolios are halted and resumed by admin actions (reason asked)."""

from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from copytrading import live
from copytrading.live.admin import _version
from copytrading.live.models import LiveSettings, PortfolioHalt
from copytrading.live.services import halt_all

pytestmark = pytest.mark.django_db
URL = "/admin/copytrading/livesettings/"


def form(**overrides) -> dict:
    values = {
        "copying_halted_reason": "",
        "margin_call_level_pct": "110",
        "min_investment": "0",
        "default_max_profit_share_pct": "50",
        "default_platform_cut_pct": "20",
        "default_max_followers": "1000",
        "catalog_cache_seconds": "5",
    }
    values["version"] = _version(LiveSettings.get_solo())  # as the page would carry it
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def entries(model) -> list[LogEntry]:
    return list(LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model)).order_by("pk"))


def test_the_page_opens(admin_client):
    page = admin_client.get(URL)
    assert page.status_code == 200
    for text in (b"copying_halted", b"copying_halted_reason", b"margin_call_level_pct", b"Kill switch"):
        assert text in page.content


def test_decimals_read_as_plain_numbers(admin_client):
    page = admin_client.get(URL).content.decode()
    assert 'name="min_investment" value="0"' in page
    assert "E-8" not in page


def test_a_page_opened_before_someone_halted_cannot_resume_by_saving(admin_client):
    """Staff A opens the page; B halts from the command line; A saves a knob
    with the (stale) unticked switch: refused, the halt and knob unchanged."""
    opened = form(min_investment="50")
    halt_all(reason="Feed wrong", actor=None)

    page = admin_client.post(URL, opened)

    assert page.status_code == 200 and b"changed by someone else" in page.content
    view = live.load()
    assert (view.copying_halted, view.min_investment) == (True, Decimal("0"))


def test_halting_without_a_reason_is_refused(admin_client):
    page = admin_client.post(URL, form(copying_halted="on"))
    assert page.status_code == 200  # the form again, with the error
    assert b"A reason is required to halt copying" in page.content
    assert not live.load().copying_halted
    assert not [e for e in entries(LiveSettings) if (e.additional_data or {}).get("action")]


def test_a_value_out_of_range_is_refused(admin_client):
    page = admin_client.post(URL, form(margin_call_level_pct="50"))
    assert page.status_code == 200 and b"errornote" in page.content
    assert live.load().margin_call_level_pct == Decimal("110")


def test_flipping_the_switch_and_a_knob_is_audited_with_the_staff_user(admin_client, admin_user):
    response = admin_client.post(
        URL, form(copying_halted="on", copying_halted_reason="Feed wrong", min_investment="50")
    )
    assert response.status_code == 302, response.content
    view = live.current()
    assert (view.copying_halted, view.copying_halted_reason, view.min_investment) == (True, "Feed wrong", Decimal("50"))
    record = LiveSettings.get_solo()
    assert record.copying_halted_by == admin_user and record.copying_halted_at is not None
    verbs = {e.additional_data["action"]: e for e in entries(LiveSettings) if (e.additional_data or {}).get("action")}
    assert set(verbs) == {"live_settings.update", "kill_switch.on"}
    assert all(e.actor == admin_user for e in verbs.values())
    assert verbs["kill_switch.on"].changes["copying_halted"] == ["False", "True"]
    before, after = verbs["live_settings.update"].changes["min_investment"]
    assert (Decimal(before), Decimal(after)) == (0, 50)

    response = admin_client.post(URL, form(min_investment="50"))  # unticked: resume
    assert response.status_code == 302
    assert not live.current().copying_halted
    assert "kill_switch.off" in [(e.additional_data or {}).get("action") for e in entries(LiveSettings)]


def test_portfolio_halt_and_resume_actions(admin_client, admin_user, world):
    portfolio, other = world.leader(), world.leader()
    changelist = "/admin/portfolios/portfolio/"
    asked = admin_client.post(changelist, {"action": "halt_copying", "_selected_action": [portfolio.pk]})
    assert asked.status_code == 200 and b"Halt copying" in asked.content  # the reason is asked
    assert not PortfolioHalt.objects.exists()
    empty = admin_client.post(
        changelist, {"action": "halt_copying", "_selected_action": [portfolio.pk], "apply": "1", "reason": ""}
    )
    assert empty.status_code == 200 and not PortfolioHalt.objects.exists()  # still asking

    done = admin_client.post(
        changelist,
        {"action": "halt_copying", "_selected_action": [portfolio.pk], "apply": "1", "reason": "Leader review"},
    )
    assert done.status_code == 302
    (halt,) = PortfolioHalt.objects.all()
    assert (halt.portfolio_id, halt.reason, halt.by) == (portfolio.pk, "Leader review", admin_user)
    assert live.current().halt_reason(portfolio.pk) == "Leader review"
    assert live.current().halt_reason(other.pk) is None
    listed = admin_client.get("/admin/copytrading/portfoliohalt/")
    assert b"Leader review" in listed.content

    resumed = admin_client.post(
        "/admin/copytrading/portfoliohalt/", {"action": "resume", "_selected_action": [halt.pk]}
    )
    assert resumed.status_code == 302
    assert not PortfolioHalt.objects.exists() and live.current().halt_reason(portfolio.pk) is None
    verbs = [(e.additional_data["action"], e.actor) for e in entries(PortfolioHalt)]
    assert verbs == [("kill_switch.portfolio_on", admin_user), ("kill_switch.portfolio_off", admin_user)]

    # And the resume action of the portfolio list.
    admin_client.post(
        changelist, {"action": "halt_copying", "_selected_action": [other.pk], "apply": "1", "reason": "x"}
    )
    admin_client.post(changelist, {"action": "resume_copying", "_selected_action": [other.pk]})
    assert not PortfolioHalt.objects.exists()
