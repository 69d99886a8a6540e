"""Undoing one source's bad version: its counts, tallies and series go back; audit holds."""

from __future__ import annotations

from sqlalchemy import func, select

from rome.store.audit import audit
from rome.store.models import HistoryRow, RaceStatusRow, SeriesRow, TallyRow
from rome.store.rollback import rollback_source
from rome.store.tally import record_snapshots
from tests.helpers.builders import race_snapshot

BAD = 2999_000_000  # a version (and feed time) far in the future


def apply(database, *snapshots):
    with database.Session.begin() as session:
        return record_snapshots(session, list(snapshots))


def totals(database, source, vote_type="total"):
    with database.Session() as session:
        return {(t.candidate_id, t.rank): t.votes for t in session.scalars(
            select(TallyRow).where(TallyRow.source_id == source, TallyRow.vote_type == vote_type))}


def series_ends(database, source):
    """The newest point of each of source's series, as charts end on it."""
    with database.Session() as session:
        newest = {}
        for point in session.scalars(select(SeriesRow).where(SeriesRow.source_id == source)
                                     .order_by(SeriesRow.at)):
            newest[(point.candidate_id, point.rank)] = point.votes
        return newest


def test_rolling_one_source_back_undoes_its_bad_version_and_keeps_the_others(database):
    apply(database, race_snapshot("ap", 1, {101: 100, 102: 90}, below={"Pima": {101: 40}}),
          race_snapshot("sos", 1, {101: 105, 102: 80}))
    before = {"ap": totals(database, "ap"), "sos": totals(database, "sos")}
    # The future-dated file: other figures, a unit and a vote type the night never had.
    apply(database, race_snapshot("ap", BAD, {101: 7, 102: 999_999, 103: 5},
                                  below={"Pima": {101: 1}, "Yuma": {102: 3}},
                                  vote_types={"early": {101: 2}}, winner=102))
    frozen = apply(database, race_snapshot("ap", 2, {101: 150, 102: 95}))
    assert frozen.applied == 0  # the bad version outranks every real update
    assert totals(database, "ap")[(102, 1)] == 999_999

    with database.Session.begin() as session:
        result = rollback_source(session, "ap", above=1)
    assert (result.history, result.counts_reset, result.counts_deleted) == (6, 3, 3)
    assert result.statuses == 1
    assert totals(database, "ap") == before["ap"]
    assert totals(database, "ap", "early") == {}
    assert totals(database, "sos") == before["sos"]
    assert series_ends(database, "ap") == {k: v for k, v in before["ap"].items()}
    with database.Session() as session:
        assert audit(session) == []
        assert session.scalar(select(func.max(HistoryRow.version))
                              .where(HistoryRow.source_id == "ap")) == 1
        assert session.scalar(select(func.count()).select_from(RaceStatusRow)
                              .where(RaceStatusRow.source_id == "ap")) == 0

    # Real updates count again.
    again = apply(database, race_snapshot("ap", 2, {101: 150, 102: 95}))
    assert again.changed == 2
    assert totals(database, "ap")[(101, 1)] == 150
    assert series_ends(database, "ap")[(101, 1)] == 150
    with database.Session() as session:
        assert audit(session) == []


def test_rolling_back_below_every_version_empties_the_source_and_audit_holds(database):
    apply(database, race_snapshot("ap", 5, {101: 100}), race_snapshot("sos", 5, {101: 3}))
    apply(database, race_snapshot("ap", 6, {101: 120}))
    with database.Session.begin() as session:
        rollback_source(session, "ap", above=0)
    assert totals(database, "ap") == {} and series_ends(database, "ap") == {}
    assert totals(database, "sos") != {}
    with database.Session() as session:
        assert audit(session) == []
    # Nothing above the limit: nothing changes.
    apply(database, race_snapshot("ap", 7, {101: 130}))
    with database.Session.begin() as session:
        result = rollback_source(session, "ap", above=7)
    assert (result.history, result.counts_reset, result.tallies) == (0, 0, 0)
    assert totals(database, "ap")[(101, 1)] == 130


def test_rome_source_rollback_undoes_the_bad_version_and_rome_audit_passes(
        database_url, monkeypatch, capsys):
    from rome.cli import main
    from rome.store import db

    monkeypatch.setenv("ROME_DATABASE_URL", database_url)
    database = db.connect(database_url)
    apply(database, race_snapshot("ap", 2, {101: 1000, 102: 900}))  # seeded at version 1
    before = totals(database, "ap")
    apply(database, race_snapshot("ap", BAD, {101: 7, 102: 999_999}))
    assert main(["source", "rollback", "ap", "--above", "2"]) == 0
    out = capsys.readouterr().out
    assert "ap: removed 2 history rows above version 2; 2 counts set back" in out
    assert "audit ok" in out
    assert totals(database, "ap") == before
    assert main(["audit"]) == 0
    database.engine.dispose()
