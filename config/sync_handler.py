"""Django's ASGI handler with its middleware chain run synchronously, in one
hop to a worker thread, and worker threads reused across requests.

Django's own ASGI handler runs the chain in async mode. Every view here is
synchronous, and so are most middlewares (Django's, django-prometheus's and
ours); in async mode each hook of a ``MiddlewareMixin`` middleware
(process_request, process_view, process_response), the rendering of a DRF
response and the view itself is a hop between the event loop and a worker
thread, and a sync-only middleware in the middle of the chain adds a hop
back to the loop: 14 hops per request of the public catalog. Here the whole
chain, view and rendering included, runs in one call, as under WSGI.

Django also gives every request a thread of its own (asgiref's
``ThreadSensitiveContext``: all of a request's synchronous code, its
database connection's included, runs on one thread), started for the
request and stopped after it by yet another thread: ~0.45 ms of CPU a
request. Here the request's thread comes from a pool of single-thread
executors: still one thread per request in flight, as many as there are
requests in flight, but started once. Reading the body, the request_started
and request_finished signals, sending the response and the client-disconnect
watch stay Django's (docs/decisions.md, §96).
"""

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse


class RequestThread(ThreadPoolExecutor):
    """One worker thread that knows whether it still has work (a request
    abandoned by its client or its deadline may still be running on it)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self._pending = 0
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._lock:
            self._pending += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future) -> None:
        with self._lock:
            self._pending -= 1

    @property
    def idle(self) -> bool:
        return self._pending == 0


class SyncChainASGIHandler(ASGIHandler):
    # Idle request threads kept for the next requests; past this, a thread
    # freed by a burst is stopped.
    keep_threads = 32

    def __init__(self):
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self._idle: list[RequestThread] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self._idle.pop() if self._idle else RequestThread()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            # A request cancelled mid-view (its client went away) leaves the
            # view running on its thread: that thread is not handed to another request.
            if thread.idle and len(self._idle) < self.keep_threads:
                self._idle.append(thread)
            else:
                thread.shutdown(wait=False)

    async def run_get_response(self, request):
        # thread_sensitive: the request's thread, where the request_started and
        # request_finished signals run too (they check out and release its
        # database connection).
        response = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response
