"""Real exchanges through ccxt: the client factory, instrument sync, the price feed,
and users' linked exchange accounts (encrypted credentials, validated keys).

Nothing in the hot path imports this package; it reads from exchanges and
writes through the core's services (``instrument`` rows, ``price_set``). The
linked accounts' rows (``models.py``) belong to the ``copytrading`` app."""
