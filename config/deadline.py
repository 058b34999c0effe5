"""A deadline for every HTTP request of the web process, at the ASGI layer.

A frozen server (SIGSTOP, a VM paused, a dead peer behind a NAT that still
answers) completes TCP handshakes and ACKs data from its kernel, so no driver
timeout, keepalive or ``tcp_user_timeout`` ends a query already in flight: the
request's thread waits until the server comes back. The connect, pool and
socket timeouts bound everything else; this bounds that last case. When the
deadline passes before the application has started its response, the client
gets ``503 SERVICE_UNAVAILABLE`` JSON with ``Retry-After``; the application
keeps running in the background (its thread cannot be interrupted) and
whatever it sends later is dropped. A response already started is left alone.

``DeadlineGuardMiddleware`` then stops that request's database work: once its
deadline has passed, its next query raises, so its transaction rolls back
instead of committing when the server resumes; so does one whose statement
outlives the deadline (only a COMMIT already in flight may still complete).
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from django.db import OperationalError, connection

from copytrading.outages import RETRY_AFTER_SECONDS, SERVICE_UNAVAILABLE_BODY

log = logging.getLogger(__name__)

Scope = dict
Message = dict
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

BODY = json.dumps(SERVICE_UNAVAILABLE_BODY).encode()


class RequestDeadline:
    def __init__(self, app: ASGIApp, *, seconds: float, retry_after: int = RETRY_AFTER_SECONDS):
        self.app = app
        self.seconds = seconds
        self.retry_after = retry_after
        # Requests that outlived their deadline and still run (for /healthz and logs).
        self.abandoned: set[asyncio.Task] = set()

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            return await self.app(scope, receive, send)
        state = {"started": False, "expired": False}
        scope = {**scope, "deadline": state}  # read by DeadlineGuardMiddleware

        async def guarded_send(message: Message) -> None:
            if state["expired"]:
                return  # the client already has its 503
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if done or state["started"]:
            return await task
        state["expired"] = True
        self.abandoned.add(task)
        task.add_done_callback(self._forget)
        log.error("request deadline (%.1f s) passed: %s %s answered 503", self.seconds, scope["method"], scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(self.retry_after).encode()),
                    (b"content-length", str(len(BODY)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": BODY})

    def _forget(self, task: asyncio.Task) -> None:
        self.abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("request finished after its deadline with an error: %r", task.exception())


class DeadlineGuardMiddleware:
    """Refuses the database work of a request whose deadline has passed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        state = getattr(request, "scope", {}).get("deadline")
        if state is None:
            return self.get_response(request)

        def guard(execute, sql, params, many, context):
            if state["expired"]:
                raise OperationalError("the request's deadline passed; its transaction is abandoned")
            result = execute(sql, params, many, context)
            # Checked again after the statement: one that was in flight on a frozen
            # server and completes after the 503 must not let its transaction go
            # on to commit. Only a COMMIT already in flight stays ambiguous.
            if state["expired"]:
                raise OperationalError("the request's deadline passed during a statement; its transaction is abandoned")
            return result

        with connection.execute_wrapper(guard):
            return self.get_response(request)
