"""The live stream: one WebSocket endpoint, ``/ws/stream/``, served by daphne
through Channels (docs/api.md, "Live stream"; docs/decisions.md §52-55).

- ``publish``: the writers' side. After a commit, a price listener and a
  change listener (``copytrading.changes``) send one notice per mark and one
  per transaction to every web process — through the Redis channel layer in
  services mode, through a small table the web process polls when embedded.
- ``hub``: one per web process. It receives the notices and hands them to the
  streams (one per subscribed topic of a socket) that care, by instrument,
  account, subscription, user or portfolio, and flushes what changed to each
  socket as one frame, coalesced.
- ``topics``: what a topic shows — its snapshot, how a tick changes it in
  memory, when it reloads. Apps above the core add their own topics
  (``register_topic``): ``copies`` (followers), ``portfolio:<id>``
  (portfolios).
- ``consumer`` and ``routing``: the socket, its authentication and its
  messages; any other WebSocket path is closed with 4404.
"""
