"""The one accessor of the live settings: defaults, the per-process cache,
invalidation by the services and by any save, and the record's ranges."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from copytrading import live
from copytrading.errors import DomainError
from copytrading.live import services
from copytrading.live.models import LiveSettings, PortfolioHalt

pytestmark = pytest.mark.django_db
D = Decimal


def test_without_a_record_the_defaults_apply_and_nothing_is_written():
    view = live.current()
    assert (view.copying_halted, view.margin_call_level_pct, view.min_investment) == (False, D("110"), D("0"))
    assert (view.notify_trade_copied, view.default_max_followers) == (False, 1000)
    assert view.halt_reason(1) is None
    assert not LiveSettings.objects.exists()  # a read never writes


def test_the_env_value_is_the_first_value_of_the_record(settings):
    settings.RISK_MARGIN_CALL_LEVEL_PCT = D("150")
    settings.NOTIFY_TRADE_COPIED = True
    assert live.current().margin_call_level_pct == D("150")
    record = LiveSettings.get_solo()
    assert (record.margin_call_level_pct, record.notify_trade_copied) == (D("150"), True)
    settings.RISK_MARGIN_CALL_LEVEL_PCT = D("200")  # the record exists now: it wins
    assert live.current().margin_call_level_pct == D("150")


def test_a_warm_read_costs_no_query(django_assert_num_queries):
    live.current()
    with django_assert_num_queries(0):
        for _ in range(100):
            live.current()


def test_a_save_through_the_services_is_seen_at_once_in_this_process():
    assert live.current().min_investment == D("0")
    services.update_settings(min_investment="250")
    assert live.current().min_investment == D("250")
    services.halt_portfolio(7, reason="exchange down")
    assert live.current().halt_reason(7) == "exchange down"
    assert live.current().halt_reason(8) is None


def test_any_save_of_the_record_drops_the_cache_too():
    live.current()
    record = LiveSettings.get_solo()
    record.catalog_cache_seconds = 42
    record.save()
    assert live.current().catalog_cache_seconds == 42


def test_another_process_s_change_is_seen_within_the_cache_time(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: clock[0])
    LiveSettings.get_solo()
    assert live.current().min_investment == D("0")
    # Another process writes (no signal here: a plain UPDATE).
    LiveSettings.objects.update(min_investment=D("99"))
    PortfolioHalt.objects.bulk_create([PortfolioHalt(portfolio_id=3, reason="drill", at="2026-01-01T00:00Z")])
    clock[0] += live.CACHE_SECONDS - 0.1
    assert live.current().min_investment == D("0")  # still this process's copy
    clock[0] += 0.2
    view = live.current()
    assert view.min_investment == D("99") and view.halt_reason(3) == "drill"


def test_the_global_halt_wins_over_a_portfolio_s_reason():
    services.halt_portfolio(5, reason="leader account compromised")
    services.halt_all(reason="market data feed wrong")
    view = live.current()
    assert view.halt_reason(5) == view.halt_reason(6) == "market data feed wrong"
    services.resume_all()
    assert live.current().halt_reason(5) == "leader account compromised"


@pytest.mark.parametrize(
    "values",
    [
        {"copying_halted": True, "copying_halted_reason": ""},
        {"margin_call_level_pct": D("99")},
        {"margin_call_level_pct": D("1001")},
        {"min_investment": D("-1")},
        {"default_max_profit_share_pct": D("100.01")},
        {"default_platform_cut_pct": D("-0.01")},
        {"default_max_followers": 0},
        {"catalog_cache_seconds": 3601},
    ],
)
def test_the_database_refuses_values_out_of_range(values):
    LiveSettings.get_solo()
    with pytest.raises(IntegrityError), transaction.atomic():
        LiveSettings.objects.update(**values)


def test_a_halt_needs_a_reason_in_the_database_too():
    with pytest.raises(IntegrityError), transaction.atomic():
        PortfolioHalt.objects.create(portfolio_id=1, reason="", at="2026-01-01T00:00Z")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"margin_call_level_pct": "50"}, "__all__"),
        ({"min_investment": "lots"}, "min_investment"),
        ({"min_investment": 1.5}, "min_investment"),
        ({"catalog_cache_seconds": "NaN"}, "catalog_cache_seconds"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_the_service_refuses_bad_values_with_a_stable_code(values, field):
    with pytest.raises(DomainError) as raised:
        services.update_settings(**values)
    assert raised.value.code in ("INVALID_LIVE_SETTING", "UNKNOWN_LIVE_SETTING")
    assert raised.value.status == 400
    assert LiveSettings.get_solo().margin_call_level_pct == D("110")


def test_halting_needs_a_reason():
    with pytest.raises(DomainError) as raised:
        services.halt_all(reason="  ")
    assert raised.value.code == "HALT_REASON_REQUIRED"
    with pytest.raises(DomainError):
        services.update_settings(copying_halted=True)
    with pytest.raises(DomainError):
        services.halt_portfolio(1, reason="")
    assert not live.load().copying_halted and not PortfolioHalt.objects.exists()


def test_halting_twice_or_resuming_what_runs_does_nothing():
    assert services.halt_all(reason="drill") is True
    assert services.halt_all(reason="drill again") is False
    assert live.current().copying_halted_reason == "drill"
    assert services.resume_all() is True and services.resume_all() is False
    assert services.halt_portfolio(4, reason="x") is True and services.halt_portfolio(4, reason="y") is False
    assert services.resume_portfolio(4) is True and services.resume_portfolio(4) is False
