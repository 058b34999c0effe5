"""The embedded broker writes a message whole before a consumer sees it
(config/file_broker.py): kombu's own wrote into a file a worker could
already take, empty (its decode error stopped the worker)."""

import os

from kombu import Connection

from config import file_broker


def test_a_message_appears_only_complete(tmp_path, monkeypatch):
    seen_while_writing = []
    real_replace = os.replace

    def replace(src, dst):
        # The moment before the rename: no consumable message exists yet.
        seen_while_writing.append(sorted(p.name for p in tmp_path.iterdir()))
        real_replace(src, dst)

    monkeypatch.setattr(file_broker.os, "replace", replace)
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path), "store_processed": False}
    with Connection("filesystem://localhost//", transport_options=options) as conn:
        assert isinstance(conn.transport, file_broker.Transport)
        queue = conn.SimpleQueue("q1")
        queue.put({"n": 1})
        assert all(name.endswith(".part") for name in seen_while_writing[0])
        assert queue.get(timeout=1).payload == {"n": 1}
        queue.close()
