"""Keep every fetched body once: content-addressed, gzipped, indexed by fetch.

A body is stored under its sha256 (``<dir>/<ab>/<sha256>.gz``), written whole
(a temporary file renamed into place) and never twice; each fetch adds one
row to ``archive`` (source, URL, status, time, the feed's version, the
Clarity county) that points at it, and one line to the source's journal
(rome/store/journal.py), so the archive names its fetches without the
database. Messages to notekeeper carry the row's id, a claim check, instead
of a body of many megabytes (or several ids, a poll cycle's county files:
``claim_checks``); notekeeper reads the body back here
(``snapshot_of``; an AP answer is unzipped and parsed as it is read, never
whole in memory). ``prune`` applies the retention setting (a pruned fetch's
journal line stays; a rebuild skips it, its body gone).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from rome.feeds.formats import MAX_PAYLOAD_BYTES, parse_feed, parse_feed_chunks
from rome.feeds.formats._common import CHUNK_BYTES
from rome.feeds.poll.clarity import BadZip, scoped, unzip_one
from rome.feeds.snapshot import MAX_AHEAD, InvalidPayload, Snapshot
from rome.store import journal
from rome.store.models import ArchiveRow

# Kinds of fetched bodies: feed and zip are what notekeeper parses.
FEED_KINDS = ("feed", "zip")


class ArchiveMissing(InvalidPayload):
    """A claim check whose body is not (or no longer) in the archive."""


# Fetches one claim check names at most: a state's cycle of 159 county files goes to
# notekeeper as ten messages, which its processes share, and each becomes a few
# messages to caesar instead of one a county (rome/feeds/split.py: pack).
CLAIMS_PER_MESSAGE = 16
MAX_REFERENCE_DIGITS = 19  # a bigint


def claim_checks(archive_ids: list[int], per_message: int = CLAIMS_PER_MESSAGE) -> list[str]:
    """The claim checks naming archive_ids, in order, per_message ids each, comma-separated."""
    return [",".join(map(str, archive_ids[at:at + per_message]))
            for at in range(0, len(archive_ids), per_message)]


def claimed_ids(claim: object, per_message: int = CLAIMS_PER_MESSAGE) -> list[str]:
    """The references a claim check names, each still to be checked (snapshot_of);
    InvalidPayload for what is no claim check at all."""
    if not isinstance(claim, str) or len(claim) > per_message * (MAX_REFERENCE_DIGITS + 1):
        raise InvalidPayload(f"archive reference must be row ids, got {claim!r:.40}")
    references = claim.split(",")
    if len(references) > per_message:
        raise InvalidPayload(f"a claim check names at most {per_message} fetches, "
                             f"this one {len(references)}")
    return references


@dataclass(frozen=True)
class Archive:
    root: Path

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.gz"

    def write(self, body: bytes) -> str:
        """Store body once; return its sha256."""
        digest = hashlib.sha256(body).hexdigest()
        final = self.path(digest)
        if final.exists():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=final.parent, prefix=".", suffix=".part",
                                         delete=False) as f:
            f.write(gzip.compress(body, compresslevel=6, mtime=0))
            f.flush()
            os.fsync(f.fileno())
        os.replace(f.name, final)
        return digest

    def chunks(self, sha256: str, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The body, unzipped as it is read, size bytes at a time: never whole in memory."""
        try:
            with gzip.open(self.path(sha256), "rb") as f:
                while chunk := f.read(size):
                    yield chunk
        except (OSError, EOFError) as exc:
            raise ArchiveMissing(f"archived body {sha256[:12]}… cannot be read: {exc}") from None

    def read(self, sha256: str) -> bytes:
        try:
            return gzip.decompress(self.path(sha256).read_bytes())
        except (OSError, EOFError) as exc:
            raise ArchiveMissing(f"archived body {sha256[:12]}… cannot be read: {exc}") from None


def record_fetch(session: Session, archive: Archive, *, source: str, fmt: str, url: str,
                 status: int, body: bytes, fetched_at: float, kind: str,
                 version: str | None = None, scope: str | None = None) -> int:
    """Archive one fetched body, journal the fetch and index it; return the index row's id.

    The journal line is written (and fsync'd) before the index row: the
    archive alone names every fetch whose row the database holds.
    """
    digest = archive.write(body)
    version = (version or None) and version[:100]
    journal.append(archive.root, journal.Entry(
        sha256=digest, source=source, url=url[:4000], status=status, fetched_at=fetched_at,
        kind=kind, format=fmt, size=len(body), version=version, scope=scope))
    row = ArchiveRow(source_id=source, url=url[:4000], status=status,
                     fetched_at=datetime.fromtimestamp(fetched_at, UTC),
                     version=version, kind=kind, format=fmt,
                     scope=scope, sha256=digest, size=len(body))
    session.add(row)
    session.flush()
    return row.id


def parseable(archive: Archive, fetch) -> bytes:
    """The body of a fetch (index row or journal entry) as parsers take it: a zip unpacked."""
    body = archive.read(fetch.sha256)
    if fetch.kind == "zip":
        try:
            body = unzip_one(body)
        except BadZip as exc:
            raise InvalidPayload(str(exc)) from None
    return body


def snapshot_of(session: Session, archive: Archive, archive_id: int, source: str, *,
                max_ahead: float | None = MAX_AHEAD,
                max_bytes: int = MAX_PAYLOAD_BYTES) -> Snapshot:
    """Parse the body a claim check names into its (scoped) snapshot, or raise InvalidPayload."""
    if isinstance(archive_id, bool) or not isinstance(archive_id, int):
        raise InvalidPayload(f"archive reference must be a whole number, got {archive_id!r:.40}")
    row = session.get(ArchiveRow, archive_id)
    if row is None:
        raise ArchiveMissing(f"no archived fetch {archive_id}")
    if row.source_id != source:
        raise InvalidPayload(f"archived fetch {archive_id} is of source {row.source_id!r}, "
                             f"not {source!r}")
    if row.kind == "feed" and not row.scope:
        # Read as it is unzipped: an AP answer is parsed race by race, never held whole.
        return parse_feed_chunks(row.format, archive.chunks(row.sha256), size=row.size,
                                 source=source, max_ahead=max_ahead, max_bytes=max_bytes)
    return parse_fetch(row, parseable(archive, row), source, max_ahead=max_ahead,
                       max_bytes=max_bytes)


def parse_fetch(fetch, body: bytes, source: str, *,
                max_ahead: float | None = MAX_AHEAD,
                max_bytes: int = MAX_PAYLOAD_BYTES) -> Snapshot:
    """The (scoped) snapshot of a fetch's parseable body; fetch is an index row or a journal
    entry (its format, kind, version and scope)."""
    version = (int(fetch.version) if fetch.kind == "zip" and (fetch.version or "").isdigit()
               else None)
    snapshot = parse_feed(fetch.format, body, source=source, version=version, max_ahead=max_ahead,
                          max_bytes=max_bytes)
    if fetch.scope:
        return scoped(snapshot, fetch.scope).validate(max_ahead=max_ahead)
    return snapshot


def journalled_snapshot(archive: Archive, entry: journal.Entry, *,
                        max_ahead: float | None = MAX_AHEAD) -> Snapshot:
    """The snapshot of a journal entry's body, read without the database."""
    return parse_fetch(entry, parseable(archive, entry), entry.source, max_ahead=max_ahead)


def fetches(session: Session, source: str, since: datetime | None = None,
            kinds: tuple[str, ...] = FEED_KINDS) -> list[ArchiveRow]:
    """A source's archived fetches of the given kinds, in fetch order."""
    query = select(ArchiveRow).where(ArchiveRow.source_id == source,
                                     ArchiveRow.kind.in_(kinds))
    if since is not None:
        query = query.where(ArchiveRow.fetched_at >= since)
    return list(session.scalars(query.order_by(ArchiveRow.id)))


def prune(session: Session, archive: Archive, *, days: float | None = None,
          max_bytes: int | None = None, now: datetime | None = None) -> int:
    """Forget fetches older than days, or the oldest beyond max_bytes stored; return how many.

    A body file goes once no fetch left points at it.
    """
    now = now or datetime.now(UTC)
    doomed: list[int] = []
    if days is not None:
        doomed += session.scalars(select(ArchiveRow.id).where(
            ArchiveRow.fetched_at < now - timedelta(days=days)))
    if max_bytes is not None:
        # Newest first, each distinct body counted once, at its newest fetch.
        kept, seen = 0, set()
        for row_id, digest in session.execute(
                select(ArchiveRow.id, ArchiveRow.sha256).order_by(ArchiveRow.id.desc())):
            if digest not in seen:
                seen.add(digest)
                kept += _stored_size(archive, digest)
            if kept > max_bytes:
                doomed.append(row_id)
    if not doomed:
        return 0
    doomed = sorted(set(doomed))
    digests = set()
    for start in range(0, len(doomed), 500):
        chunk = doomed[start:start + 500]
        digests.update(session.scalars(select(ArchiveRow.sha256).where(ArchiveRow.id.in_(chunk))))
        session.execute(delete(ArchiveRow).where(ArchiveRow.id.in_(chunk)))
    still = set(session.scalars(select(ArchiveRow.sha256).where(ArchiveRow.sha256.in_(digests))))
    for digest in digests - still:
        archive.path(digest).unlink(missing_ok=True)
    return len(doomed)


def _stored_size(archive: Archive, digest: str) -> int:
    try:
        return archive.path(digest).stat().st_size
    except OSError:
        return 0


def total_size(archive: Archive) -> int:
    """Bytes the archive's files take on disk."""
    return sum(p.stat().st_size for p in archive.root.glob("*/*.gz"))


def count(session: Session, source: str | None = None) -> int:
    query = select(func.count()).select_from(ArchiveRow)
    if source is not None:
        query = query.where(ArchiveRow.source_id == source)
    return session.scalar(query)
