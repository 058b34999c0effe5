"""The notification kinds: one registry, each kind with its severity, its
default channels and its title/body templates. Pure Python (no Django): the
API validates preference kinds against it, ``notify`` renders from it.

A kind's e-mail default follows its severity (high and critical are
e-mailed, SPEC §8); its in-app default is on. "Trade copied" is off for
everyone unless the platform turns it on (the live setting notify_trade_copied: SPEC §8's
triggers are enabled globally); then each follower may still turn it off."""

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


EMAILED_SEVERITIES = frozenset({Severity.HIGH, Severity.CRITICAL})


@dataclass(frozen=True, slots=True)
class Kind:
    code: str
    severity: Severity
    title: str  # str.format templates over the notification's data
    body: str
    audience: str  # "follower" or "leader": who receives it (documentation and the admin)
    in_app: bool = True

    @property
    def email(self) -> bool:
        return self.severity in EMAILED_SEVERITIES

    def render(self, data: dict) -> tuple[str, str]:
        """(title, body) from the templates; a missing field renders as "?"
        rather than failing the writer's transaction."""
        values = _Lenient(data)
        return self.title.format_map(values)[:200], self.body.format_map(values)


class _Lenient(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _kinds(*kinds: Kind) -> dict[str, Kind]:
    return {k.code: k for k in kinds}


F, L = "follower", "leader"
KINDS: dict[str, Kind] = _kinds(
    # subscribing and unsubscribing, both sides
    Kind("subscribed", Severity.LOW, "You now copy {portfolio}", "Your copy of {portfolio} started with {amount}.", F),
    Kind("new_subscriber", Severity.LOW, "New follower", "A follower started copying {portfolio}.", L),
    Kind("unsubscribed", Severity.LOW, "Copy ended", "Your copy of {portfolio} ended; {returned} returned.", F),
    Kind("subscriber_left", Severity.LOW, "A follower left", "A follower stopped copying {portfolio}.", L),
    # trading
    Kind("trade_copied", Severity.LOW, "Trade copied", "A trade of {portfolio} was copied.", F),
    Kind("closed_in_profit", Severity.LOW, "Closed in profit", "A copied trade closed with a profit of {pnl}.", F),
    Kind(
        "copy_error",
        Severity.CRITICAL,
        "A trade could not be copied",
        "A trade of {portfolio} was not copied: {reason}.",
        F,
    ),
    Kind(
        "profit_share_credited",
        Severity.LOW,
        "Profit share credited",
        "{amount} of profit share was credited to portfolio #{portfolio_id}.",
        L,
    ),
    Kind("withdrawal_done", Severity.MEDIUM, "Withdrawal done", "{amount} was moved to your main wallet.", F),
    Kind("leader_withdrawal_done", Severity.MEDIUM, "Withdrawal done", "{amount} was moved to your main wallet.", L),
    # risk interventions (the watchdog writes the body, with the figures)
    Kind("risk.daily_loss_realized", Severity.HIGH, "Daily loss limit hit", "Copying is paused.", F),
    Kind("risk.daily_loss_unrealized", Severity.CRITICAL, "Daily loss limit hit", "Positions were closed.", F),
    Kind("risk.margin_call", Severity.HIGH, "Margin-call protection triggered", "Copying is paused.", F),
    Kind("risk.max_drawdown", Severity.HIGH, "Max drawdown stop triggered", "Copying is paused.", F),
    Kind("risk.daily_loss_reset", Severity.LOW, "Copying resumed", "Your daily loss limit reset.", F),
    Kind("risk.follower_daily_loss_limit", Severity.LOW, "A follower hit their daily loss limit", "", L),
    # the exchange reconciliation (copytrading/exchanges/reconciliation.py writes the body)
    Kind(
        "exchange_drift",
        Severity.HIGH,
        "Your exchange account differs from your copy",
        "{detail}",
        F,
    ),
    # the kill switch (copytrading/live): once per copy when a halt starts
    Kind(
        "copying_halted",
        Severity.HIGH,
        "Copying is halted",
        "Copying of {portfolio} is halted by our staff: {reason}. Open positions still follow the leader's closes.",
        F,
    ),
    # portfolio lifecycle
    Kind("portfolio_closing", Severity.MEDIUM, "Portfolio closing", "{portfolio} is closing.", L),
    Kind("portfolio_archived", Severity.MEDIUM, "Portfolio archived", "{portfolio} is closed and archived.", L),
    Kind("portfolio_closed", Severity.HIGH, "Portfolio closed", "{portfolio} was closed; your copy ended.", F),
)


def kind(code: str) -> Kind:
    """The registered kind (KeyError for an unknown one: a writer's bug)."""
    return KINDS[code]
