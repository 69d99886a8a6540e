"""The fault-free replay `rome chaos` compares its final state with, and the comparison.

The same input, applied in order, in this process, without a broker or a
fault: every body the run's polls fetched, as the archive's own journal names
them (rome/store/journal.py) in fetch order, parsed as notekeeper parses it
and recorded as caesar records it. A body the run fetched but never sent on
(its poll killed between the journal and the send) is in the reference too:
the poll that comes after it asks the same again and gets the same or newer
figures, which the run applied.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from rome.feeds.snapshot import InvalidPayload
from rome.store import db, journal
from rome.store.archive import FEED_KINDS, Archive, journalled_snapshot
from rome.store.audit import audit, tallies_by_key
from rome.store.models import RejectedRow
from rome.store.tally import record_snapshots


def rebuild_reference(archive_dir: Path, reference_url: str) -> int:
    """Apply every journalled fetch, fault-free and in order, to the empty database at
    reference_url; return how many were applied."""
    archive = Archive(archive_dir)
    entries, _ = journal.read_all(archive.root)
    reference = db.connect(reference_url)
    applied = 0
    try:
        for entry in entries:
            if entry.kind not in FEED_KINDS:
                continue
            try:
                snapshot = journalled_snapshot(archive, entry, max_ahead=None)
            except InvalidPayload:
                continue  # the run rejected it too
            with reference.Session.begin() as session:
                record_snapshots(session, [snapshot])
            applied += 1
    finally:
        reference.engine.dispose()
    return applied


def compare_states(run_url: str, reference_url: str, summary) -> None:
    """Fill summary's counts, lost, doubled, differing keys, audit problems and rejected rows."""
    run, reference = db.connect(run_url), db.connect(reference_url)
    try:
        with run.Session() as session:
            got = tallies_by_key(session)
            summary.audit_problems = [str(d) for d in audit(session)]
            summary.rejected = session.scalar(select(func.count()).select_from(RejectedRow))
        with reference.Session() as session:
            want = tallies_by_key(session)
    finally:
        run.engine.dispose()
        reference.engine.dispose()
    summary.counts = len(got)
    for key in sorted(set(got) | set(want), key=str):
        have, should = got.get(key, 0), want.get(key, 0)
        if have < should:
            summary.lost += should - have
        elif have > should:
            summary.doubled += have - should
        if key not in got or key not in want or have != should:
            summary.differing_keys.append(f"{key}: run {got.get(key)} reference {want.get(key)}")
