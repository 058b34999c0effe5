"""Real exchanges through ccxt: clients, market data and linked exchange accounts."""
