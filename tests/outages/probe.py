"""Time each Redis client of the project once (run in a subprocess with the
stack's environment, while the test has Redis stopped or frozen). Prints JSON:
{call: {"outcome": "ok" or the error's class, "seconds": …}}."""

import json
import time

import django

django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from django.core.cache import cache  # noqa: E402

from config.celery import app  # noqa: E402


def timed(fn) -> dict:
    started = time.monotonic()
    try:
        fn()
        outcome = "ok"
    except Exception as error:  # noqa: BLE001 - the outcome is what is measured
        outcome = type(error).__name__
    return {"outcome": outcome, "seconds": round(time.monotonic() - started, 2)}


if __name__ == "__main__":
    print(
        json.dumps(
            {
                "cache": timed(lambda: cache.get("probe")),
                "channel layer": timed(lambda: async_to_sync(get_channel_layer().send)("probe", {"type": "probe"})),
                "broker publish": timed(lambda: app.send_task("backoffice.tasks.worker_heartbeat")),
            }
        )
    )
