"""sync_instruments against the exchange double (Binance through ccxt) and
recorded OKX answers: created, updated, halted, resumed, idempotent."""

import json
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from copytrading.models import Instrument, Product
from tests.exchange_double.state import Market

RECORDED = Path(__file__).parent / "recorded"


def sync(exchange="binanceusdm", *extra):
    out = StringIO()
    call_command("sync_instruments", "--exchange", exchange, *extra, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_first_sync_creates_perpetuals_with_the_exchange_constraints(exchange_settings):
    output = sync()
    assert output.splitlines()[0] == (
        "binanceusdm: 3 created, 0 updated, 0 halted, 0 resumed, 0 unchanged, 0 skipped, 0 conflicts"
    )
    btc = Instrument.objects.get(symbol="BTC/USDT:USDT")
    assert (btc.product, btc.base, btc.quote, btc.exchange, btc.exchange_symbol) == (
        Product.MARGIN,
        "BTC",
        "USDT",
        "binanceusdm",
        "BTCUSDT",
    )
    assert (btc.qty_step, btc.min_qty, btc.max_qty, btc.price_tick, btc.min_notional) == (
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("1000"),
        Decimal("0.1"),
        Decimal("100"),
    )
    assert btc.max_leverage == 20  # Binance states none without keys: the conservative default
    assert btc.mark_price is None and btc.is_active and btc.synced_at is not None
    sol = Instrument.objects.get(symbol="SOL/USDT:USDT")
    assert (sol.qty_step, sol.price_tick, sol.min_notional) == (Decimal("1"), Decimal("0.01"), Decimal("5"))


@pytest.mark.django_db
def test_sync_is_idempotent_and_reports_each_changed_field(exchange_double, exchange_settings):
    sync()
    assert (
        sync()
        .splitlines()[0]
        .endswith("0 created, 0 updated, 0 halted, 0 resumed, 3 unchanged, 0 skipped, 0 conflicts")
    )
    Instrument.objects.filter(symbol="BTC/USDT:USDT").update(max_leverage=50)  # an operator's choice survives
    market = exchange_double.state.markets["ETHUSDT"]
    market.tick_size, market.min_notional = Decimal("0.05"), Decimal("25")
    output = sync()
    assert "0 created, 1 updated, 0 halted, 0 resumed, 2 unchanged" in output
    assert "  updated  ETH/USDT:USDT price_tick: 0.01 -> 0.05" in output
    assert "  updated  ETH/USDT:USDT min_notional: 20 -> 25" in output
    eth = Instrument.objects.get(symbol="ETH/USDT:USDT")
    assert (eth.price_tick, eth.min_notional) == (Decimal("0.05"), Decimal("25"))
    assert Instrument.objects.get(symbol="BTC/USDT:USDT").max_leverage == 50


@pytest.mark.django_db
def test_delisted_and_suspended_markets_halt_and_resume_never_deleted(exchange_double, exchange_settings):
    state = exchange_double.state
    sync()
    state.remove_market("SOLUSDT")
    state.markets["ETHUSDT"].status = "SETTLING"
    output = sync()
    assert "2 halted" in output
    assert "  halted   SOL/USDT:USDT (no longer listed)" in output
    assert "  halted   ETH/USDT:USDT (not trading on the exchange)" in output
    assert set(Instrument.objects.filter(is_active=False).values_list("symbol", flat=True)) == {
        "SOL/USDT:USDT",
        "ETH/USDT:USDT",
    }
    assert Instrument.objects.count() == 3
    assert "0 halted" in sync()  # halting is idempotent too
    state.markets["ETHUSDT"].status = "TRADING"
    state.add_market(Market("SOLUSDT", "SOL", "USDT", "0.0100", "1", "1", "1000000", "5", "150"))
    output = sync()
    assert "2 resumed" in output
    assert Instrument.objects.filter(is_active=True).count() == 3


@pytest.mark.django_db
def test_dry_run_reports_and_writes_nothing(exchange_settings):
    output = sync("binanceusdm", "--dry-run")
    assert output.startswith("binanceusdm (dry run): 3 created")
    assert Instrument.objects.count() == 0


@pytest.mark.django_db
def test_local_instruments_are_adopted_and_another_exchanges_are_left_alone(instruments, exchange_settings):
    Instrument.objects.filter(symbol="SOL/USDT:USDT").update(exchange="okx")
    output = sync()
    assert "0 created, 2 updated" in output and "1 conflicts" in output
    assert "  updated  BTC/USDT:USDT exchange: (local) -> binanceusdm" in output
    assert "  conflict SOL/USDT:USDT (synced from okx)" in output
    btc = Instrument.objects.get(symbol="BTC/USDT:USDT")
    assert (btc.exchange, btc.mark_price, btc.max_leverage) == ("binanceusdm", Decimal("64000"), 100)
    # AVAX is local and not on this exchange: untouched, still trading
    assert Instrument.objects.get(symbol="AVAX/USDT:USDT").is_active


@pytest.mark.django_db
def test_binance_spot_and_perpetuals_through_the_spot_exchange_id(exchange_settings):
    sync("binance")
    spot = Instrument.objects.get(symbol="ETH/BTC")
    assert (spot.product, spot.quote, spot.qty_step, spot.price_tick, spot.min_notional, spot.max_leverage) == (
        Product.SPOT,
        "BTC",
        Decimal("0.0001"),
        Decimal("0.00001"),
        Decimal("0.0001"),
        1,
    )
    assert Instrument.objects.get(symbol="BTC/USDT").product == Product.SPOT
    assert Instrument.objects.get(symbol="BTC/USDT:USDT").exchange == "binance"


@pytest.mark.django_db
def test_okx_from_recorded_instruments(exchange_double, exchange_settings):
    """A second exchange: OKX's recorded /api/v5/public/instruments answers,
    parsed by ccxt's okx code. Contracts become base units; inverse swaps,
    dated futures, options and suspended pairs are skipped."""
    recorded = json.loads((RECORDED / "okx_instruments.json").read_text())
    for kind in ("SPOT", "SWAP", "FUTURES", "OPTION"):
        exchange_double.state.record_answer(
            "/api/v5/public/instruments", {"code": "0", "msg": "", "data": recorded[kind]}, instType=kind
        )
    output = sync("okx")
    assert (
        output.splitlines()[0] == "okx: 4 created, 0 updated, 0 halted, 0 resumed, 0 unchanged, 4 skipped, 0 conflicts"
    )
    assert "  skipped  BTC/USD:BTC (inverse swap (settled in the base asset))" in output
    assert "  skipped  BTC/USDT:USDT-261225 (dated future)" in output
    assert "  skipped  BTC/USD:BTC-261225-100000-C (option)" in output
    assert "  skipped  XYZ/USDT (not trading on the exchange)" in output
    swap = Instrument.objects.get(symbol="BTC/USDT:USDT")
    assert (swap.exchange_symbol, swap.contract_size, swap.qty_step, swap.min_qty, swap.max_qty) == (
        "BTC-USDT-SWAP",
        Decimal("0.01"),
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("1000000"),
    )
    assert (swap.price_tick, swap.max_leverage, swap.min_notional) == (Decimal("0.1"), 100, Decimal("0"))
    eth = Instrument.objects.get(symbol="ETH/USDT:USDT")
    assert (eth.contract_size, eth.qty_step, eth.price_tick) == (Decimal("0.1"), Decimal("0.001"), Decimal("0.01"))
    spot = Instrument.objects.get(symbol="BTC/USDT")
    assert (spot.product, spot.qty_step, spot.min_qty, spot.price_tick, spot.max_leverage) == (
        Product.SPOT,
        Decimal("0.00000001"),
        Decimal("0.00001"),
        Decimal("0.1"),
        1,
    )
    assert "4 unchanged" in sync("okx")


@pytest.mark.django_db
def test_unknown_exchange_and_an_unreachable_one_are_clear_errors(exchange_double, exchange_settings):
    with pytest.raises(CommandError, match="ccxt has no exchange 'nosuch'"):
        sync("nosuch")
    exchange_double.inject("status", status=503, times=None)
    with pytest.raises(CommandError, match="binanceusdm: loading markets failed: ExchangeNotAvailable"):
        sync()
    assert Instrument.objects.count() == 0
