"""A migrated, catalog-seeded SQLite file made once per test process, copied per test.

Running the migrations on a new SQLite file costs each test about 0.1 s of CPU and,
with SQLite's fsyncs on a busy disk, half a second of wall time; copying the file
that the same `db.prepare` made costs neither. The copy is still passed through
`db.prepare` by the callers, which finds it at head and the catalog in place.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rome.store import db

_template: Path | None = None
_folder: tempfile.TemporaryDirectory | None = None


def _made() -> Path:
    global _template, _folder
    if _template is None:
        _folder = tempfile.TemporaryDirectory(prefix="rome-template-")  # removed at exit
        path = Path(_folder.name) / "prepared.sqlite3"
        db.prepare(f"sqlite:///{path}").engine.dispose()
        # The last connection's close checkpoints and removes the WAL: one file is all.
        assert not path.with_name(path.name + "-wal").exists()
        _template = path
    return _template


def prepared_copy(path: Path) -> str:
    """Copy the prepared SQLite file to path (which must not exist); return its URL."""
    if path.exists():
        raise FileExistsError(path)
    shutil.copyfile(_made(), path)
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    """Return the file of a plain sqlite:/// URL; None for any other URL, an in-memory one,
    or one with a query string (left to db.prepare)."""
    prefix = "sqlite:///"
    if (not url.startswith(prefix) or url == prefix or url.startswith(prefix + ":memory:")
            or "?" in url):
        return None
    return Path(url[len(prefix):])
