"""What the apps above the core add to the core's admin pages.

The core knows portfolios and subscriptions by id only and never imports the
apps that own them (DESIGN.md). Those apps register here, when their admin
module loads, what the core's pages need of them:

- ``register_page(kind, url_name)``: the admin page of a "portfolio" or a
  "subscription" by id, so the core's lists and pages show those ids as links;
- ``register_follower_lookup(...)``: the follower's username of a
  subscription id, as a query expression (one correlated subquery in the
  page's own query, not a query per row), and the subscriptions a search
  term names (a subquery the execution search ORs in).

Without a registration the ids stay plain and the search finds by id only.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Expression, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

_pages: dict[str, str] = {}


@dataclass(frozen=True)
class FollowerLookup:
    # The follower's username for the subscription id in ``column`` of the
    # outer query (e.g. ``Subquery(... pk=OuterRef(column) ...)``).
    username: Callable[[str], Expression]
    # Ids of the subscriptions of the user(s) whose username ``term`` is.
    subscriptions_named: Callable[[str], QuerySet]


_follower_lookup: FollowerLookup | None = None


def register_page(kind: str, url_name: str) -> None:
    """``url_name`` (e.g. "admin:followers_subscription_change") takes the id."""
    _pages[kind] = url_name


def register_follower_lookup(lookup: FollowerLookup) -> None:
    global _follower_lookup
    _follower_lookup = lookup


def page_url(kind: str, pk: int | None) -> str | None:
    url_name = _pages.get(kind)
    if pk is None or url_name is None:
        return None
    try:
        return reverse(url_name, args=[pk])
    except NoReverseMatch:
        return None


def page_link(kind: str, pk: int | None, label: str | None = None) -> str:
    """A link to the admin page of the ``kind`` with id ``pk``; the bare id
    when no app registered one."""
    if pk is None:
        return "-"
    text = label if label is not None else f"#{pk}"
    url = page_url(kind, pk)
    return format_html('<a href="{}">{}</a>', url, text) if url else text


def follower_username(column: str = "subscription_id") -> Expression | None:
    return _follower_lookup.username(column) if _follower_lookup else None


def subscriptions_named(term: str) -> QuerySet | None:
    return _follower_lookup.subscriptions_named(term) if _follower_lookup else None
