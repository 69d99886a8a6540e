"""Ingest's cost stays flat as the night grows, and `rome bench --growth` measures it."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from builders import race_snapshot
from rome.tally import record_snapshots

COUNTIES = [f"County {n:03d}" for n in range(250)]


def test_current_counts_keep_their_size_as_new_versions_replace_them(database):
    """Updates find room on their own page (HOT), so no vacuum is needed to stop the growth."""
    if database.dialect != "postgresql":
        pytest.skip("page layout is PostgreSQL's")

    def report(version: int):
        below = {c: {cid: version * 10 + i % 7 for cid in (101, 102, 103, 104)}
                 for i, c in enumerate(COUNTIES)}
        with database.Session.begin() as session:
            record_snapshots(session, [race_snapshot("ap", version, {101: version},
                                                     below=below)])

    def pages() -> int:
        with database.Session() as session:
            return session.scalar(text(
                "SELECT pg_relation_size('current_counts') / current_setting('block_size')::int"))

    for version in range(1, 11):  # the first versions settle the rows into their pages
        report(version)
    before = pages()
    for version in range(11, 51):  # 40 versions of 1,001 counts: 40,040 updates
        report(version)
    # Without room on the page, most updates would move their row to a new page at the
    # table's end (about 8 pages a version here, 320 in all); only vacuum would stop that.
    assert pages() - before < 40
