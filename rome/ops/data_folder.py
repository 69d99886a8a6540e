"""Know what Rome keeps in its data folder: lock it while a demo runs, delete it on reset."""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from rome.data_files import LOCK, PATTERNS, SQLITE

if TYPE_CHECKING:
    from rome.settings import Settings

class FolderInUse(RuntimeError):
    """A running demo holds the data folder."""


def hold(data_dir: Path):
    """Lock data_dir for as long as the returned file stays open (the demo's lifetime)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(data_dir / LOCK, "a")  # held open on purpose: closing it unlocks
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise FolderInUse(f"a rome demo is running on {data_dir}: stop it first") from None
    return lock


def entries(data_dir: Path) -> list[Path]:
    """List what Rome made in data_dir, sorted."""
    found = {path for pattern in PATTERNS for path in data_dir.glob(pattern)}
    return sorted(found)


def not_embedded(settings: Settings) -> list[str]:
    """Name the settings that keep data outside the folder, which a reset would not touch."""
    outside = []
    if settings.database_url != f"sqlite:///{settings.data_dir / SQLITE}":
        outside.append(f"the results are in {_hide_password(settings.database_url)}"
                       " (ROME_DATABASE_URL)")
    if not settings.embedded_broker:
        outside.append(f"the queues are in {_hide_password(settings.broker_url)}"
                       " (ROME_BROKER_URL)")
    return outside


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}"


def delete(data_dir: Path) -> tuple[list[str], list[str]]:
    """Delete what Rome made in data_dir, and the folder if that empties it.

    Return the names deleted (folders with a trailing /) and the names left.
    Refuses with FolderInUse while a demo runs.
    """
    lock = hold(data_dir)
    deleted = []
    try:
        for path in entries(data_dir):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                deleted.append(f"{path.name}/")
            else:
                path.unlink()  # the lock file too: the lock lives on the open file
                deleted.append(path.name)
    finally:
        lock.close()
    left = sorted(path.name for path in data_dir.iterdir())
    if not left:
        data_dir.rmdir()
    return deleted, left
