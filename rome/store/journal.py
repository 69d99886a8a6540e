"""The archive's own record of its fetches: an append-only journal per source beside the bodies.

The ``archive`` table indexes the fetches, but it lives in the database: a lost
database would leave bodies nobody can name, order or attribute. So each
fetch is also appended, as one JSON line, to ``<archive>/journal/<source>.jsonl``
(sha256, source, URL, status, fetch time, the feed's version, the Clarity
county, kind and format) when its body is archived, before the index row is
written, and fsync'd: a crash loses at most the line being written, and
``read_journal`` drops a torn last line (one without its newline). A line
that cannot be read anywhere else is an error naming the file and line:
nothing is silently skipped.

``reindex`` puts journal entries back into the ``archive`` table (finding
the rows still there, adding the missing ones), so `rome replay --archive
--all` can send each fetch as its claim check after `rome db upgrade` made an
empty database.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from rome.feeds.snapshot import SOURCE_ID
from rome.store.models import ArchiveRow

JOURNAL = "journal"


class JournalError(ValueError):
    """The journal cannot be read (or is missing); the message says which file and why."""


@dataclass(frozen=True)
class Entry:
    sha256: str
    source: str
    url: str
    status: int
    fetched_at: float  # seconds since 1970, as the fetch was stamped
    kind: str
    format: str
    size: int
    version: str | None = None
    scope: str | None = None

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.fetched_at, UTC)


def journal_dir(root: Path) -> Path:
    return root / JOURNAL


def journal_path(root: Path, source: str) -> Path:
    if not SOURCE_ID.fullmatch(source):
        raise JournalError(f"a journal is named by a source id, got {source!r:.40}")
    return journal_dir(root) / f"{source}.jsonl"


def append(root: Path, entry: Entry) -> None:
    """Append entry to its source's journal as one line, written in one call and fsync'd."""
    path = journal_path(root, entry.source)
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(asdict(entry), separators=(",", ":"), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # the new file's name, too, must survive a crash
        _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sources(root: Path) -> list[str]:
    """The sources that have a journal, sorted."""
    folder = journal_dir(root)
    return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []


def read_journal(root: Path, source: str) -> tuple[list[Entry], bool]:
    """Return source's entries in the order written, and whether a torn last line was dropped."""
    path = journal_path(root, source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{path}: cannot be read: {exc}") from None
    lines = data.split(b"\n")
    torn = lines[-1] != b""  # the last write did not reach its newline
    entries = []
    for number, raw in enumerate(lines[:-1], 1):
        if not raw.strip():
            continue
        try:
            fields = json.loads(raw)
            entry = Entry(**fields)
        except (ValueError, TypeError) as exc:
            raise JournalError(f"{path}:{number}: not a journal entry: {exc}") from None
        if entry.source != source:
            raise JournalError(f"{path}:{number}: an entry of source {entry.source!r} in the "
                               f"journal of {source!r}")
        entries.append(entry)
    return entries, torn


def has_bodies(root: Path) -> bool:
    return any(root.glob("*/*.gz")) if root.is_dir() else False


def read_all(root: Path) -> tuple[list[Entry], list[str]]:
    """Every source's entries, in fetch order (each source's own order kept), and notes.

    JournalError when the archive holds bodies but no journal (archived before
    journals were kept, or the folder lost): those bodies cannot be told apart
    without the database's index, and replaying a part of them would rebuild a
    state that only looks whole.
    """
    names = sources(root)
    if not names:
        where = journal_dir(root)
        if has_bodies(root):
            raise JournalError(f"the archive at {root} holds bodies but no journal ({where} "
                               f"is missing or empty): it cannot say what was fetched, from "
                               f"where or when; replay a source from the database's index "
                               f"with --archive --source ID instead")
        raise JournalError(f"the archive at {root} has no journal ({where}): nothing was "
                           f"fetched into it")
    entries, notes = [], []
    for name in names:
        found, torn = read_journal(root, name)
        if torn:
            notes.append(f"{journal_path(root, name)}: a torn last line (a crash mid-write) "
                         f"was left out")
        entries += [(entry.fetched_at, name, i, entry) for i, entry in enumerate(found)]
    return [e for *_, e in sorted(entries, key=lambda t: t[:3])], notes


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def reindex(session: Session, entries: list[Entry]) -> list[int]:
    """The archive row of each entry, in order: the one still indexed, or a new one."""
    known: dict[tuple, list[int]] = {}
    for source in sorted({e.source for e in entries}):
        for row in session.scalars(select(ArchiveRow).where(ArchiveRow.source_id == source)
                                   .order_by(ArchiveRow.id)):
            key = (row.source_id, row.sha256, _aware(row.fetched_at), row.url)
            known.setdefault(key, []).append(row.id)
    ids = []
    for entry in entries:
        key = (entry.source, entry.sha256, entry.when, entry.url[:4000])
        if known.get(key):
            ids.append(known[key].pop(0))
            continue
        row = ArchiveRow(source_id=entry.source, url=entry.url[:4000], status=entry.status,
                         fetched_at=entry.when, version=entry.version, kind=entry.kind,
                         format=entry.format, scope=entry.scope, sha256=entry.sha256,
                         size=entry.size)
        session.add(row)
        session.flush()
        ids.append(row.id)
    return ids
