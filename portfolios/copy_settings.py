"""Copy settings: what a template fills and a subscription holds, their
server-side ranges, and the three platform default templates.

One validator serves templates, subscribe and every settings update, so a
value refused in one place is refused in all of them, with the same code,
the field named and the allowed range in the sentence.

Templates give the daily loss limits in percent of the amount invested
(a platform default cannot know the amount); subscribe turns them into the
amounts the watchdog checks (``risk.models.RiskLimits``), copied once.
"""

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from copytrading import sizing
from copytrading.decisions import DEFAULT_SLIPPAGE_TOLERANCE_PCT
from copytrading.errors import DomainError, validate_all
from risk.services import LIMIT_RANGES, validate_limit

SIZING_FIELDS = ("sizing_model", "multiplier", "fixed_notional", "risk_factor")
# The copy settings a subscription holds in its own row.
SETTING_FIELDS = (*SIZING_FIELDS, "leverage_override", "copy_margin", "copy_spot", "slippage_tolerance_pct")
# The risk limits a subscription holds in risk.RiskLimits (amounts and percentages).
RISK_FIELDS = tuple(LIMIT_RANGES)
# What a template holds instead of the two daily loss amounts.
TEMPLATE_RISK_FIELDS = (
    "daily_loss_realized_pct",
    "daily_loss_unrealized_pct",
    "margin_call_level_pct",
    "max_drawdown_pct",
    "max_open_positions",
    "max_exposure_pct",
)
TEMPLATE_FIELDS = (*SETTING_FIELDS, *TEMPLATE_RISK_FIELDS)

LEVERAGE_OVERRIDE_RANGE = (1, 125)
SLIPPAGE_RANGE = (Decimal("0"), Decimal("100"))
DAILY_LOSS_PCT_RANGE = (Decimal("0"), Decimal("100"))  # (0, 100] percent of the amount invested
_CENT = Decimal("0.01")
_Q8 = Decimal("0.00000001")

BASE_DEFAULTS: dict = {
    "sizing_model": sizing.SizingModel.PROGRESSIVE,
    "multiplier": None,
    "fixed_notional": None,
    "risk_factor": None,
    "leverage_override": None,
    "copy_margin": True,
    "copy_spot": True,
    "slippage_tolerance_pct": DEFAULT_SLIPPAGE_TOLERANCE_PCT,
}


def _decimal(name: str, value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise DomainError("INVALID_NUMBER", f"{name} must be a decimal number.", field=name)
    value = Decimal(value)
    if not value.is_finite():
        raise DomainError("INVALID_NUMBER", f"{name} must be a decimal number.", field=name)
    return value


def validate_sizing(*, sizing_model: str, multiplier=None, fixed_notional=None, risk_factor=None) -> None:
    """The sizing model and its parameter (the other two parameters are ignored)."""
    if sizing_model not in sizing.SizingModel.ALL:
        raise DomainError(
            "INVALID_SIZING_MODEL",
            f"sizing_model must be one of {', '.join(sizing.SizingModel.ALL)}.",
            field="sizing_model",
        )
    values = {"multiplier": multiplier, "fixed_notional": fixed_notional, "risk_factor": risk_factor}
    name = sizing.PARAMETER_RANGES[sizing_model][0]
    value = values[name]
    if value is not None:
        value = _decimal(name, value)
    error = sizing.parameter_error(sizing_model, value)
    if error:
        raise DomainError("OUT_OF_RANGE", f"For {sizing_model} sizing, {error}.", field=name)
    if value != value.quantize(_Q8):
        raise DomainError("INVALID_PRECISION", f"{name} has at most 8 decimal places.", field=name)


def validate_leverage_override(value) -> None:
    """None follows the leader's leverage; either way the instrument's maximum caps it."""
    if value is None:
        return
    low, high = LEVERAGE_OVERRIDE_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DomainError(
            "OUT_OF_RANGE", f"leverage_override must be a whole number in [{low}, {high}].", field="leverage_override"
        )


def validate_slippage_tolerance(value) -> None:
    value = _decimal("slippage_tolerance_pct", value)
    low, high = SLIPPAGE_RANGE
    if not low <= value <= high:
        raise DomainError(
            "OUT_OF_RANGE",
            f"slippage_tolerance_pct must be in [{low}, {high}] (percent).",
            field="slippage_tolerance_pct",
        )
    if value != value.quantize(_CENT):
        raise DomainError(
            "INVALID_PRECISION", "slippage_tolerance_pct has at most 2 decimal places.", field="slippage_tolerance_pct"
        )


def _validate_flags(copy_margin, copy_spot) -> None:
    for name, value in (("copy_margin", copy_margin), ("copy_spot", copy_spot)):
        if not isinstance(value, bool):
            raise DomainError("INVALID_BOOLEAN", f"{name} must be true or false.", field=name)
    if not copy_margin and not copy_spot:
        raise DomainError(
            "NOTHING_TO_COPY", "At least one of copy_margin and copy_spot must be true.", field="copy_margin"
        )


def validate_settings(values: dict) -> dict:
    """Check a complete set of SETTING_FIELDS; returns it with the parameters
    of the other sizing models cleared (the database checks the one in use)."""
    validate_all(
        lambda: validate_sizing(**{k: values.get(k) for k in SIZING_FIELDS}),
        lambda: validate_leverage_override(values.get("leverage_override")),
        lambda: validate_slippage_tolerance(values.get("slippage_tolerance_pct")),
        lambda: _validate_flags(values.get("copy_margin"), values.get("copy_spot")),
    )
    out = {k: values.get(k) for k in SETTING_FIELDS}
    used = sizing.PARAMETER_RANGES[out["sizing_model"]][0]
    for name in ("multiplier", "fixed_notional", "risk_factor"):
        if name != used:
            out[name] = None
    return out


def validate_risk_limits(values: dict) -> None:
    """The subscription's risk limits (amounts; None switches a rule off)."""
    validate_all(*(lambda name=name, value=value: _validate_risk_limit(name, value) for name, value in values.items()))


def _validate_risk_limit(name: str, value) -> None:
    if name not in LIMIT_RANGES:
        raise DomainError("UNKNOWN_FIELD", f"Unknown risk limit {name}.", field=name)
    validate_limit(name, value)


def validate_template_risk(values: dict) -> None:
    validate_all(*(lambda name=name: _validate_template_risk(name, values.get(name)) for name in TEMPLATE_RISK_FIELDS))


def _validate_template_risk(name: str, value) -> None:
    if value is None:
        return
    if name in ("daily_loss_realized_pct", "daily_loss_unrealized_pct"):
        value = _decimal(name, value)
        low, high = DAILY_LOSS_PCT_RANGE
        if not low < value <= high:
            raise DomainError("OUT_OF_RANGE", f"{name} must be in ({low}, {high}] (percent).", field=name)
        if value != value.quantize(_CENT):
            raise DomainError("INVALID_PRECISION", f"{name} has at most 2 decimal places.", field=name)
    else:
        validate_limit(name, value)


def risk_limits_for(template_values: dict, amount: Decimal) -> dict:
    """A template's risk settings as a subscription's limits for ``amount``:
    the daily loss percentages become amounts (8 dp, rounded down, never 0)."""
    out = {}
    for name in TEMPLATE_RISK_FIELDS:
        value = template_values.get(name)
        if name in ("daily_loss_realized_pct", "daily_loss_unrealized_pct"):
            target = name.replace("_pct", "").replace("daily_loss_", "daily_loss_limit_")
            if value is None:
                out[target] = None
            else:
                out[target] = max((amount * value / 100).quantize(_Q8, rounding=ROUND_DOWN), _Q8)
        else:
            out[name] = value
    return out


# --- the platform defaults ------------------------------------------------------------


@dataclass(frozen=True)
class DefaultTemplate:
    key: str
    name: str
    description: str
    values: dict = field(default_factory=dict)


def _values(**kw) -> dict:
    return {name: kw.get(name, BASE_DEFAULTS.get(name)) for name in TEMPLATE_FIELDS}


DEFAULT_TEMPLATES: dict[str, DefaultTemplate] = {
    t.key: t
    for t in (
        DefaultTemplate(
            "conservative",
            "Conservative",
            "A quarter of the leader's size at 3x at most; tight loss limits.",
            _values(
                multiplier=Decimal("0.25"),
                leverage_override=3,
                slippage_tolerance_pct=Decimal("0.50"),
                daily_loss_realized_pct=Decimal("3.00"),
                daily_loss_unrealized_pct=Decimal("5.00"),
                margin_call_level_pct=Decimal("115.00"),
                max_drawdown_pct=Decimal("10.00"),
                max_open_positions=3,
                max_exposure_pct=Decimal("150.00"),
            ),
        ),
        DefaultTemplate(
            "balanced",
            "Balanced",
            "Half the leader's size at 5x at most; moderate loss limits.",
            _values(
                multiplier=Decimal("0.5"),
                leverage_override=5,
                slippage_tolerance_pct=Decimal("1.00"),
                daily_loss_realized_pct=Decimal("5.00"),
                daily_loss_unrealized_pct=Decimal("10.00"),
                margin_call_level_pct=Decimal("110.00"),
                max_drawdown_pct=Decimal("20.00"),
                max_open_positions=5,
                max_exposure_pct=Decimal("300.00"),
            ),
        ),
        DefaultTemplate(
            "aggressive",
            "Aggressive",
            "The leader's full size and leverage; wide loss limits.",
            _values(
                multiplier=Decimal("1"),
                leverage_override=None,
                slippage_tolerance_pct=Decimal("2.00"),
                daily_loss_realized_pct=Decimal("10.00"),
                daily_loss_unrealized_pct=Decimal("20.00"),
                margin_call_level_pct=Decimal("103.00"),
                max_drawdown_pct=Decimal("35.00"),
                max_open_positions=10,
                max_exposure_pct=Decimal("1000.00"),
            ),
        ),
    )
}


@dataclass(frozen=True)
class ResolvedSettings:
    """Everything subscribe writes: the subscription's settings and its risk limits."""

    settings: dict
    risk_limits: dict


def resolve(*, template_values: dict | None, explicit: dict, amount: Decimal) -> ResolvedSettings:
    """Merge: platform base defaults < the template's values < what the
    follower gave explicitly. Validates everything before anything is written."""
    merged = dict(BASE_DEFAULTS)
    risk: dict = {}
    if template_values is not None:
        merged.update({k: template_values.get(k) for k in SETTING_FIELDS})
        risk = risk_limits_for(template_values, amount)
    unknown = set(explicit) - set(SETTING_FIELDS) - set(RISK_FIELDS)
    if unknown:
        name = sorted(unknown)[0]
        raise DomainError("UNKNOWN_FIELD", f"Unknown setting {name}.", field=name)
    merged.update({k: v for k, v in explicit.items() if k in SETTING_FIELDS})
    risk.update({k: v for k, v in explicit.items() if k in RISK_FIELDS})
    settings, _ = validate_all(lambda: validate_settings(merged), lambda: validate_risk_limits(risk))
    return ResolvedSettings(settings, {k: v for k, v in risk.items() if v is not None})
