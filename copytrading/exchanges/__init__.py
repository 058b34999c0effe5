"""Real exchanges through ccxt: the client factory, instrument sync, the price feed.

Nothing in the hot path imports this package; it reads from exchanges and
writes through the core's services (``instrument`` rows, ``price_set``)."""
