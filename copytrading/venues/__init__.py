"""Venues: where orders execute, behind one port (``port.Venue``).

This module is the one place that decides which venue serves whom:
- a portfolio's own orders (the leader's API calls): ``venue_for_portfolio``;
- a follower's copies: ``venue_for_target`` reads ``TargetView.venue``, which
  the followers app's target source fills in per subscription (``exchange``
  for a copy wallet bound to an exchange account);
- an account's manual close and the reconciler: ``venue_for_account``.
The exchange venue (copytrading.venues.exchange, registered at start-up
under ``EXCHANGE``) serves the accounts bound to a linked exchange account;
the engine's code does not change.
"""

from copytrading.models import Account
from copytrading.venues.paper import PaperVenue
from copytrading.venues.port import Venue

PAPER = "paper"
EXCHANGE = "exchange"  # copytrading.venues.exchange registers itself under it

_venues: dict[str, Venue] = {PAPER: PaperVenue()}


def register_venue(venue: Venue) -> None:
    """Make ``venue`` reachable under ``venue.name`` (an app's ``ready()``)."""
    _venues[venue.name] = venue


def venue_named(name: str) -> Venue:
    try:
        return _venues[name]
    except KeyError:
        raise LookupError(f"no venue registered as {name!r}") from None


EXCHANGE = "exchange"


def portfolio_exchange_account_id(portfolio_id: int) -> int | None:
    """The linked exchange account a portfolio's trading account is bound to
    (None: the portfolio trades on the paper venue)."""
    return Account.objects.filter(portfolio__pk=portfolio_id).values_list("exchange_account_id", flat=True).first()


def venue_for_portfolio(portfolio_id: int) -> Venue:
    """The venue of a leader's own orders: the paper venue, or, for a
    portfolio bound to the leader's exchange account, the exchange venue
    (its orders are sent to the exchange and become leader events when the
    trade poller sees them fill: portfolios/exchange.py)."""
    if portfolio_exchange_account_id(portfolio_id) is not None:
        return venue_named(EXCHANGE)
    return _venues[PAPER]


def venue_for_target(target) -> Venue:
    """The venue a follower's copies go to (``TargetView.venue``)."""
    return venue_named(target.venue)


def venue_for_account(account_id: int) -> Venue:
    """The venue holding an account's positions and orders: the exchange
    venue for an account bound to a linked exchange account
    (``Account.exchange_account``), else the paper venue."""
    from copytrading.models import Account

    bound = Account.objects.filter(pk=account_id, exchange_account__isnull=False).exists()
    return _venues[EXCHANGE] if bound and EXCHANGE in _venues else _venues[PAPER]


def exchange_bound(account_ids) -> set[int]:
    """Which of these accounts trade on an exchange (one query)."""
    from copytrading.models import Account

    return set(
        Account.objects.filter(pk__in=list(account_ids), exchange_account__isnull=False).values_list("pk", flat=True)
    )
