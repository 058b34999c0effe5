"""The client web pages: server-rendered templates made interactive with htmx.

Each app keeps the pages of what it owns in its own ``web`` package (views,
urls), their templates under ``templates/web/``:

- ``copytrading/web``: the layout, log in / register / log out, the wallet,
  the notifications page, and what every page shares: ``forms`` (the API's
  serializers and the services' errors as messages next to their fields),
  ``charts`` (SVG drawn on the server), the reader's time zone, the template
  filters (``copytrading/templatetags/web.py``).
- ``portfolios/web``: the leaderboard at ``/``, the portfolio page, the
  leader's dashboard.
- ``followers/web``: the copy dialog and its preview, my copies.

A page never holds a rule: it validates with the API's serializer, writes
through the same service and reads through the same selector as the API.
Live figures come from the WebSocket stream (``static/web/live.js``).
"""
