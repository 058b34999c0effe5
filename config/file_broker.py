"""The embedded broker: kombu's filesystem transport, each message written
whole before a consumer can see it.

kombu creates a message's file, then writes it: a worker listing the folder
in between moved the still-empty file away and failed to decode it, an
"unrecoverable" error that stopped the worker (and ``run_stack`` with it,
every few minutes under the demo's load). Here a message is written under a
name no queue matches (``….msg.part``) and renamed into place once complete:
a rename within one folder is atomic. ``install`` makes the
``filesystem://`` broker URL use it (config/celery.py)."""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"  # kombu's name: its order and queue
        path = os.path.join(self.data_folder_out, name)
        try:
            with open(path + ".part", "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(path + ".part", path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
