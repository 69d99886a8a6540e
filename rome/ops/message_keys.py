"""Keep the keys that sign Rome's task messages, and sign and check with them (HMAC-SHA256).

Every process that sends or runs tasks (beat, workers, anything publishing)
reads one key file: one key per line, `<key id> <secret in hex>`, the first
line the key that signs, every line a key that verifies. `rome keys rotate`
puts a new key first, so messages queued before it still verify; `rome keys
retire` removes an old one once nothing signed with it can be queued. The file
is made on first use (like the Flower login), readable by its owner only.

A signed message body is `rome1.<key id>.<mac>.<body>`: mac is the base64url
HMAC-SHA256, under the key named, of everything before it and the body. Only
the body is signed (the encoder sees nothing else), as with Celery's own
message signing. workers/signing.py registers this as a kombu serializer.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rome.settings import SettingsError

VERSION = b"rome1"
KEY_BYTES = 32
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
HEADER = ("# Rome's message keys: `rome keys`. The first line signs; every line verifies.\n"
          "# Keep it secret: whoever reads it can enqueue work.\n")
# Seconds a signing process goes on with the keys it read before it looks at the file again.
RECHECK = 1.0


class SignatureError(ValueError):
    """A message body that is not signed with one of Rome's keys; the message says how."""


@dataclass(frozen=True)
class Keyring:
    """The keys of one reading of the key file: keys[0] signs, all of them verify."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def signing_id(self) -> str:
        return self.keys[0][0]

    def secret(self, key_id: str) -> bytes | None:
        return next((secret for kid, secret in self.keys if kid == key_id), None)

    def sign(self, body: bytes) -> bytes:
        key_id, secret = self.keys[0]
        head = VERSION + b"." + key_id.encode() + b"."
        mac = base64.urlsafe_b64encode(hmac.digest(secret, head + body, "sha256")).rstrip(b"=")
        return head + mac + b"." + body


def open_signed(data: bytes, keys) -> bytes:
    """Return the body of a signed message, or raise SignatureError saying why it is refused.

    keys: a callable from a key id to its secret (None if unknown).
    """
    parts = data.split(b".", 3)
    if len(parts) != 4 or parts[0] != VERSION:
        raise SignatureError("message signature missing: the body is not signed with a Rome key")
    _, raw_id, mac, body = parts
    key_id = raw_id.decode("ascii", "replace")
    secret = keys(key_id) if KEY_ID.fullmatch(key_id) else None
    if secret is None:
        raise SignatureError(f"message signature by unknown key id {key_id!r:.60}")
    expected = base64.urlsafe_b64encode(
        hmac.digest(secret, VERSION + b"." + raw_id + b"." + body, "sha256")).rstrip(b"=")
    if not hmac.compare_digest(mac, expected):
        raise SignatureError(f"message signature invalid: wrong MAC for key id {key_id!r}")
    return body


def new_key() -> tuple[str, bytes]:
    """Return a fresh key: an id (date and random) and 32 random bytes."""
    return f"k{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(4)}", \
        secrets.token_bytes(KEY_BYTES)


def parse(text: str, path: Path) -> Keyring:
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        try:
            key_id, secret = fields[0], bytes.fromhex(fields[1])
        except (IndexError, ValueError):
            key_id, secret = "", b""
        if len(fields) != 2 or not KEY_ID.fullmatch(key_id) or len(secret) < 16:
            raise SettingsError(f"{path}, line {number}: expected `<key id> <hex secret of at "
                                "least 16 bytes>`; `rome keys show` lists the keys")
        if any(kid == key_id for kid, _ in keys):
            raise SettingsError(f"{path}: key id {key_id} appears twice")
        keys.append((key_id, secret))
    if not keys:
        raise SettingsError(f"{path} holds no key: delete it to make one, or `rome keys rotate`")
    return Keyring(tuple(keys))


def render(ring: Keyring) -> str:
    return HEADER + "".join(f"{kid} {secret.hex()}\n" for kid, secret in ring.keys)


def _write_new(path: Path, text: str, replace: bool) -> bool:
    """Write text to path whole (0600): replacing it, or only if absent. False if it was there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temp, path)
            return True
        try:
            os.link(temp, path)  # atomic and only if absent: two first runs agree on one key
        except FileExistsError:
            return False
        return True
    finally:
        temp.unlink(missing_ok=True)


def read(path: Path, create: bool = True) -> Keyring:
    """Read the key file at path, making it with one fresh key first if absent and create."""
    if create and not path.exists():
        _write_new(path, render(Keyring((new_key(),))), replace=False)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text()
    except FileNotFoundError:
        raise SettingsError(f"{path}: no message key file; `rome keys rotate` makes one") from None
    if mode & 0o077:
        raise SettingsError(f"{path} is readable by others (mode {mode:04o}): "
                            f"chmod 600 {path}, and rotate the keys if anyone may have read it")
    return parse(text, path)


def rotate(path: Path) -> tuple[Keyring, str]:
    """Put a new signing key first; the old ones keep verifying. Return the ring and new id."""
    ring = read(path, create=False) if path.exists() else Keyring(())
    key = new_key()
    ring = Keyring((key, *ring.keys))
    _write_new(path, render(ring), replace=True)
    return ring, key[0]


def retire(path: Path, key_id: str) -> Keyring:
    """Remove key_id: messages signed with it are refused from now on. Not the signing key."""
    ring = read(path, create=False)
    if ring.secret(key_id) is None:
        raise SettingsError(f"{path} holds no key {key_id!r}; `rome keys show` lists them")
    if key_id == ring.signing_id:
        raise SettingsError(f"{key_id} is the key that signs: `rome keys rotate` first, and "
                            "retire it once the messages it signed have been consumed")
    ring = Keyring(tuple(k for k in ring.keys if k[0] != key_id))
    _write_new(path, render(ring), replace=True)
    return ring


class KeyFile:
    """The key file as a long-running process sees it: read on first use, reread when it changes.

    A signer looks at the file at most every RECHECK seconds, so a rotation
    reaches running processes without a restart; a verifier that meets an
    unknown key id looks at once (rereading only if the file changed).
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._ring: Keyring | None = None
        self._stamp: tuple | None = None
        self._checked = 0.0

    def ring(self, force: bool = False) -> Keyring:
        now = time.monotonic()
        if self._ring is not None and not force and now - self._checked < RECHECK:
            return self._ring
        with self._lock:
            if self._ring is None:
                self._ring = read(self.path)
                self._stamp = self._stat()
            else:
                stamp = self._stat()
                if stamp != self._stamp and stamp is not None:
                    self._ring, self._stamp = read(self.path, create=False), stamp
            self._checked = now
            return self._ring

    def _stat(self) -> tuple | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def sign(self, body: bytes) -> bytes:
        return self.ring().sign(body)

    def open(self, data: bytes) -> bytes:
        ring = self.ring()
        head = data[:80].split(b".")
        if len(head) > 2 and ring.secret(head[1].decode("ascii", "replace")) is None:
            ring = self.ring(force=True)  # perhaps a rotation this process has not seen yet
        return open_signed(data, ring.secret)
