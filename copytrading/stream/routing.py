"""The WebSocket side of the ASGI application (config/asgi.py)."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path, re_path

from copytrading.stream.consumer import NotFoundConsumer, StreamConsumer


def websocket_application():
    return AuthMiddlewareStack(
        URLRouter(
            [
                path("ws/stream/", StreamConsumer.as_asgi()),
                re_path(r"", NotFoundConsumer.as_asgi()),
            ]
        )
    )
