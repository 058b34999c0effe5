"""The exchange double in a process of its own (benchmarks: ccxt's clients
and the double then do not share one interpreter's lock).

    python -m tests.exchange_double.serve --accounts 1000 --latency 0.1 --key-prefix bench

prints ``READY <url>`` once it listens and serves until killed. Accounts are
``<prefix>-key-<i>`` / ``<prefix>-secret-<i>`` for i in 0..N-1 (``account_keys``),
each holding 1,000,000 USDT, over ``default_markets()``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from decimal import Decimal

from .server import ExchangeDouble
from .state import ExchangeState, default_markets


def account_keys(prefix: str, index: int) -> tuple[str, str]:
    return f"{prefix}-key-{index:06d}", f"{prefix}-secret-{index:06d}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--key-prefix", default="bench")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    state = ExchangeState()
    for market in default_markets():
        state.add_market(market)
    for index in range(args.accounts):
        key, secret = account_keys(args.key_prefix, index)
        state.add_account(key, secret, balances={"USDT": Decimal("1000000")})
    double = ExchangeDouble(state, port=args.port).start()
    double.latency = args.latency
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print(f"READY {double.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    double.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
