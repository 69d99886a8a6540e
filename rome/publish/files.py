"""Write a published file whole or not at all, with its .gz beside it for gzip_static.

A reader (nginx, or the demo's web) opens either the old file or the new one, never
a half-written one: each is written to a temporary file in the same folder, flushed
to disk, then renamed over the old (a rename within one file system is atomic).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Temporary files start with this: never served (nginx denies dot files), swept by
# sweep_temporary after a publisher died between writing one and renaming it.
TEMPORARY_PREFIX = ".tmp-"
LOCK = ".publish.lock"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace path with data in one rename, durable once this returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=TEMPORARY_PREFIX)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file readable by its owner only; nginx runs as another user.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def gzipped(data: bytes) -> bytes:
    """Compress data the same way every time (no timestamp), so equal files stay equal."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def publish_file(path: Path, data: bytes) -> bool:
    """Write data to path and its gzip to path.gz, unless path already holds data; True if
    written. The .gz goes first: a reader of the new path finds its .gz already new."""
    try:
        if path.read_bytes() == data and path.with_name(path.name + ".gz").exists():
            return False
    except FileNotFoundError:
        pass
    write_atomic(path.with_name(path.name + ".gz"), gzipped(data))
    write_atomic(path, data)
    return True


def unpublish_file(path: Path) -> bool:
    """Remove path and its .gz; True if path was there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path.with_name(path.name + ".gz"))
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def sweep_temporary(folder: Path) -> int:
    """Remove the temporary files a publisher killed mid-write left behind; how many."""
    gone = 0
    for temporary in folder.rglob(f"{TEMPORARY_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
            gone += 1
    return gone


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's publish lock: publishes from any process (publish workers, the
    wipeout, `rome publish --all`) never overlap, so an older one never lands last."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
