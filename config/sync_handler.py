"""Django's ASGI handler with its middleware chain run synchronously, in one
hop to a worker thread per request.

Django's own ASGI handler runs the chain in async mode. Every view here is
synchronous, and so are most middlewares (Django's, django-prometheus's and
ours); in async mode each hook of a ``MiddlewareMixin`` middleware
(process_request, process_view, process_response), the rendering of a DRF
response and the view itself is a hop between the event loop and a worker
thread, and a sync-only middleware in the middle of the chain adds a hop
back to the loop: 14 hops per request of the public catalog, most of an
uncached page's time beyond the view's own (docs/decisions.md, NEW-A-1).
Here the whole chain, view and rendering included, runs in one call in the
request's worker thread, as under WSGI. Everything else (reading the body,
the request_started and request_finished signals, sending the response, the
client-disconnect watch) stays Django's.
"""

from asgiref.sync import sync_to_async
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self):
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)

    async def run_get_response(self, request):
        # thread_sensitive: the same worker thread as the request_started and
        # request_finished signals (ThreadSensitiveContext, per request), so the
        # database connection they check and release is the one the view used.
        response = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response
