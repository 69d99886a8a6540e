"""Sign every task message Rome sends, and refuse any that is not signed: a kombu serializer.

Registered under SERIALIZER with content type CONTENT_TYPE, it wraps kombu's
JSON: the JSON text, signed with HMAC-SHA256 by rome.ops.message_keys. The
app sends with it and accepts nothing else (workers/factory.py), so a worker
refuses a plain JSON message (ContentDisallowed) and a body whose MAC or key
id is wrong (DecodeError); workers.consumer rejects both, they dead-letter,
and workers.tasks records each in `rejected` with the reason.
"""

from __future__ import annotations

from pathlib import Path

from kombu.serialization import register
from kombu.utils.json import dumps, loads

from rome.ops.message_keys import KeyFile

SERIALIZER = "rome-hmac"
CONTENT_TYPE = "application/x-rome-hmac"

_key_files: dict[Path, KeyFile] = {}


def key_file(path: Path) -> KeyFile:
    """The one KeyFile of path in this process (read on first use, not here)."""
    if path not in _key_files:
        _key_files[path] = KeyFile(path)
    return _key_files[path]


def encoder(keys: KeyFile):
    def encode(data) -> bytes:
        return keys.sign(dumps(data).encode())
    return encode


def decoder(keys: KeyFile):
    def decode(data):
        if isinstance(data, str):
            data = data.encode()
        return loads(keys.open(bytes(data)))
    return decode


def use_signing(path: Path) -> str:
    """Register the signing serializer with the keys of path; return its name.

    kombu's registry is one per process, so the last call decides which key
    file this process signs and verifies with: one, since its settings are.
    """
    keys = key_file(path)
    register(SERIALIZER, encoder(keys), decoder(keys), content_type=CONTENT_TYPE,
             content_encoding="binary")
    return SERIALIZER
