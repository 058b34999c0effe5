"""WebSocket clients for the stream tests: Channels' WebsocketCommunicator on
the real routing, against the real database (transactional: the hub reads
from its own threads) and, in the services pass, the real Redis layer."""

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from copytrading.stream.hub import hub_reset
from copytrading.stream.routing import websocket_application

APP = websocket_application()


@pytest.fixture(autouse=True)
def quick_stream(settings):
    settings.STREAM_FLUSH_SECONDS = 0.05
    settings.STREAM_POLL_SECONDS = 0.05


class Client:
    """One socket; ``next`` returns the next message matching a test."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.seen: list[dict] = []
        self._queue: list[dict] = []

    async def send(self, **message) -> None:
        await self.ws.send_to(text_data=json.dumps(message))

    async def next(self, match=lambda m: True, timeout: float = 3.0) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for i, message in enumerate(self._queue):
                if match(message):
                    del self._queue[i]
                    return message
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no matching message in {timeout} s; queued: {self._queue}")
            output = await self._output(left)
            if output is None:
                raise AssertionError(f"no matching message in {timeout} s; queued: {self._queue}")
            if output["type"] == "websocket.close":
                raise ConnectionError(output.get("code"))
            frame = json.loads(output["text"])
            assert isinstance(frame, list) and frame, frame
            self.seen.extend(frame)
            self._queue.extend(frame)

    async def subscribe(self, topic: str, **extra) -> dict:
        await self.send(op="subscribe", topic=topic, **extra)
        return await self.next(lambda m: m.get("topic") == topic and m.get("type") in ("snapshot", "resumed"))

    async def delta(self, topic: str, match=lambda d: True, timeout: float = 3.0) -> dict:
        return await self.next(lambda m: m.get("topic") == topic and m["type"] == "delta" and match(m), timeout)

    async def _output(self, timeout: float) -> dict | None:
        """The next thing the app sent, or None after ``timeout`` (unlike
        receive_output, waiting does not cancel the application)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.ws.output_queue.empty():
            if self.ws.future.done():
                self.ws.future.result()  # its exception, if it raised
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(0.01)
        return self.ws.output_queue.get_nowait()

    async def closed(self, timeout: float = 3.0) -> int:
        """The close code the server sent."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            output = await self._output(max(0.0, deadline - asyncio.get_running_loop().time()))
            if output is None:
                raise AssertionError(f"not closed in {timeout} s")
            if output["type"] == "websocket.close":
                return output.get("code")

    async def quiet(self, topic: str, seconds: float = 0.3) -> None:
        """Nothing more arrives on ``topic`` for a while."""
        try:
            message = await self.next(lambda m: m.get("topic") == topic, timeout=seconds)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {message}")

    async def close(self) -> None:
        await self.ws.disconnect()


async def connect(*, token: str | None = None, path: str = "/ws/stream/", headers=(), auth_message=False) -> Client:
    headers = list(headers)
    if token is not None and not auth_message:
        headers.append((b"authorization", f"Token {token}".encode()))
    communicator = WebsocketCommunicator(APP, path, headers=headers)
    connected, _ = await communicator.connect(timeout=3)
    assert connected
    client = Client(communicator)
    if token is not None and auth_message:
        await client.send(op="auth", token=token)
    if token is not None:
        await client.next(lambda m: m.get("type") == "welcome")
    return client


async def reset() -> None:
    await hub_reset()
