"""The stream's wire protocol: message shapes, close codes, limits. Pure.

Client → server, one JSON object per frame::

    {"op": "auth", "token": "…"}                      (the first message, if not authenticated otherwise)
    {"op": "subscribe", "topic": "prices", "instruments": ["BTC/USDT:USDT"]}
    {"op": "subscribe", "topic": "copies", "resume": {"stream": "…", "seq": 41}}
    {"op": "unsubscribe", "topic": "copies"}
    {"op": "pong", "t": 1733224000123456}      (echoing the last ping's t)

Server → client: every frame is a JSON array of one or more messages, in
order. A topic's messages carry ``topic``, ``stream`` (its id), ``seq`` (1, 2,
3… per stream) and ``type`` (``snapshot`` or ``delta``) with ``data``;
``ping``, ``error`` and ``unsubscribed`` messages carry no sequence number.
"""

import orjson

# Close codes (4000-4999 are the application's).
CLOSE_UNAUTHENTICATED = 4001  # no or bad credentials, or no auth message in time
CLOSE_NOT_FOUND = 4404  # not a stream path
CLOSE_TOO_SLOW = 4008  # the client fell too far behind (pongs overdue)
CLOSE_TOO_MANY = 4029  # too many sockets for this user in this process
CLOSE_BAD_FRAMES = 4400  # too many malformed messages
CLOSE_UNAVAILABLE = 4503  # the stream cannot serve (its data source is down)

CLOSE_REASONS = {
    CLOSE_UNAUTHENTICATED: "UNAUTHENTICATED",
    CLOSE_NOT_FOUND: "NOT_FOUND",
    CLOSE_TOO_SLOW: "TOO_SLOW",
    CLOSE_TOO_MANY: "TOO_MANY_CONNECTIONS",
    CLOSE_BAD_FRAMES: "BAD_FRAMES",
    CLOSE_UNAVAILABLE: "UNAVAILABLE",
}

MAX_FRAME_BYTES = 4096  # a client message larger than this is refused
MAX_BAD_FRAMES = 10  # malformed messages before the socket is closed
MAX_INSTRUMENTS = 50  # per prices subscription


class ProtocolError(Exception):
    """A client message the stream refuses: answered with an error message."""

    def __init__(self, code: str, detail: str, topic: str | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.topic = code, detail, topic


def encode(value: object) -> str:
    """JSON text, Decimals and times as strings (like the REST API)."""
    return orjson.dumps(value, default=str).decode()


def frame(messages: list[dict]) -> str:
    """One frame of messages."""
    return encode(messages)


def error(code: str, detail: str, topic: str | None = None) -> dict:
    message = {"type": "error", "code": code, "detail": detail}
    if topic is not None:
        message["topic"] = topic
    return message


def parse(text: str | None) -> dict:
    """A client message, or ProtocolError."""
    if text is None:
        raise ProtocolError("BAD_MESSAGE", "Send JSON text frames.")
    if len(text) > MAX_FRAME_BYTES:
        raise ProtocolError("MESSAGE_TOO_LARGE", f"A message is at most {MAX_FRAME_BYTES} bytes.")
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("BAD_MESSAGE", "A message is one JSON object.") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("BAD_MESSAGE", 'A message is a JSON object with an "op".')
    return message
