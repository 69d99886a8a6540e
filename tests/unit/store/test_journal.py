"""The archive's journal: every fetch named without the database, torn lines, a rebuilt index."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rome.cli import main
from rome.store import journal
from rome.store.archive import Archive, record_fetch
from rome.store.models import ArchiveRow


def _fetch(session, store, source="live", body=b'{"races": []}', at=1_700_000_000.123456,
           kind="feed", version="v1", scope=None, url="http://feeds.test/a?x=1"):
    return record_fetch(session, store, source=source, fmt="ap", url=url, status=200,
                        body=body, fetched_at=at, kind=kind, version=version, scope=scope)


def _row_fields(row: ArchiveRow) -> tuple:
    at = row.fetched_at.timestamp() if row.fetched_at.tzinfo else \
        row.fetched_at.replace(tzinfo=journal.UTC).timestamp()
    return (row.source_id, row.url, row.status, round(at, 6), row.version, row.kind,
            row.format, row.scope, row.sha256, row.size)


def test_every_archived_fetch_is_journalled_as_its_index_row_says(poll_db, tmp_path):
    store = Archive(tmp_path / "archive")
    with poll_db.Session.begin() as session:
        _fetch(session, store)
        _fetch(session, store, body=b"two", at=1_700_000_001.5, kind="zip", version="7",
               scope="Maricopa")
        _fetch(session, store, source="other", at=1_700_000_000.9)
        _fetch(session, store, at=1_700_000_002.0)  # the same body fetched again
    entries, torn = journal.read_journal(store.root, "live")
    assert not torn and len(entries) == 3
    with poll_db.Session() as session:
        rows = session.scalars(select(ArchiveRow).where(ArchiveRow.source_id == "live")
                               .order_by(ArchiveRow.id)).all()
    assert [_row_fields(r) for r in rows] == [
        (e.source, e.url, e.status, round(e.fetched_at, 6), e.version, e.kind, e.format,
         e.scope, e.sha256, e.size) for e in entries]
    assert journal.sources(store.root) == ["live", "other"]
    every, notes = journal.read_all(store.root)
    assert notes == []
    assert [(e.source, e.fetched_at) for e in every] == [
        ("live", 1_700_000_000.123456), ("other", 1_700_000_000.9), ("live", 1_700_000_001.5),
        ("live", 1_700_000_002.0)]


def test_a_torn_last_line_is_left_out_and_a_bad_line_elsewhere_is_an_error(poll_db, tmp_path):
    store = Archive(tmp_path / "archive")
    with poll_db.Session.begin() as session:
        _fetch(session, store)
        _fetch(session, store, at=1_700_000_005.0)
    path = journal.journal_path(store.root, "live")
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"sha256": "ab')  # a crash in the middle of a write
    entries, torn = journal.read_journal(store.root, "live")
    assert torn and len(entries) == 2
    every, notes = journal.read_all(store.root)
    assert len(every) == 2 and "torn last line" in notes[0]
    lines = whole.split(b"\n")
    path.write_bytes(lines[0] + b"\n" + b"garbage\n" + lines[1] + b"\n")
    with pytest.raises(journal.JournalError, match=r"live\.jsonl:2: not a journal entry"):
        journal.read_journal(store.root, "live")


def test_an_archive_without_journal_cannot_be_replayed_whole(poll_db, tmp_path):
    store = Archive(tmp_path / "archive")
    with pytest.raises(journal.JournalError, match="nothing was fetched into it"):
        journal.read_all(store.root)
    store.write(b"a body archived before journals were kept")
    with pytest.raises(journal.JournalError, match="holds bodies but no journal"):
        journal.read_all(store.root)


def test_reindex_gives_a_new_database_its_rows_back_and_duplicates_none(poll_db, tmp_path):
    store = Archive(tmp_path / "archive")
    with poll_db.Session.begin() as session:
        first = _fetch(session, store)
        _fetch(session, store, body=b"two", at=1_700_000_001.5, kind="zip", version="7",
               scope="Maricopa")
    with poll_db.Session() as session:
        before = [_row_fields(r) for r in session.scalars(select(ArchiveRow)
                                                          .order_by(ArchiveRow.id))]
    entries, _ = journal.read_all(store.root)
    with poll_db.Session.begin() as session:  # nothing lost: the rows still there are found
        ids = journal.reindex(session, entries)
    assert ids[0] == first and len(set(ids)) == 2
    with poll_db.Session.begin() as session:
        session.query(ArchiveRow).delete()  # the database lost
    with poll_db.Session.begin() as session:
        ids = journal.reindex(session, entries)
    with poll_db.Session() as session:
        after = [_row_fields(session.get(ArchiveRow, i)) for i in ids]
        assert session.query(ArchiveRow).count() == 2
    assert after == before


def test_rome_replay_archive_all_says_why_it_cannot_rebuild(tmp_path, monkeypatch, capsys):
    for name in ("ROME_DATABASE_URL", "ROME_BROKER_URL", "ROME_ARCHIVE_DIR", "ROME_SOURCES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ROME_ARCHIVE_DIR", str(tmp_path / "archive"))
    Archive(tmp_path / "archive").write(b"an unjournalled body")
    assert main(["replay", "--archive", "--all"]) == 1
    assert "holds bodies but no journal" in capsys.readouterr().err
    assert main(["replay", "--all"]) == 2
    assert "--all goes with --archive" in capsys.readouterr().err
    assert main(["replay", "--archive", "--all", "--source", "live"]) == 2
    assert main(["replay", "x.json"]) == 2
    assert "--source ID is needed" in capsys.readouterr().err
