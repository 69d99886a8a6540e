"""The series answers a race's history exactly as summing the history did, and ends on the tally."""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text, update

from rome.bench.old_history import old_race_history
from rome.read.freshness import as_utc
from rome.read.history import MAX_POINTS, race_history
from rome.store import db
from rome.store.audit import audit
from rome.store.models import SeriesRow, TallyRow
from rome.store.tally import record_snapshots, wipeout
from tests.helpers.builders import race_snapshot

START = datetime(2016, 11, 8, 20, 0, 0, tzinfo=UTC)


# -- the same night read both ways ----------------------------------------------------------

def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def apply_at(database, seconds: float, *snapshots):
    """Apply snapshots in one transaction, as applied seconds after START."""
    with database.Session.begin() as session:
        for snapshot in snapshots:
            record_snapshots(session, [snapshot], applied_at=at(seconds))


def assert_same_answers(database, moments, races=(1, 2, 3), max_points=(MAX_POINTS, 9, 3, 2)):
    """Compare old and new on every race, since and bucket count; return how many points."""
    shown = 0
    with database.Session() as session:
        for race_id in races:
            for since in [None, *moments]:
                for points in max_points:
                    new = race_history(session, race_id, since, points).to_json()
                    old = old_race_history(session, race_id, since, points).to_json()
                    assert new == old, (race_id, since, points)
                    shown += len(new["points"])
    return shown


COUNTIES = ("Maricopa", "Pima", "Yuma")


@pytest.mark.slow  # thorough: seconds each; CI and the full suite run it
def test_a_night_of_corrections_reordering_levels_sources_and_a_wipeout_reads_the_same(database):
    rng = random.Random(9)
    times: list[float] = []
    seconds = 0.0
    ap = {101: 0, 102: 0, 103: 0, 104: 0}
    for n in range(1, 41):
        version = 10 * n
        # Gaps from under a millisecond to minutes, some landing on whole seconds (bucket edges).
        seconds += rng.choice([0.0004, 0.001, 0.25, 0.9996, 1, 7.5, 30, 61, 300])
        if n % 7 == 0:
            seconds = math.floor(seconds) + 1
        for cid in ap:
            ap[cid] += rng.randint(1, 400)
        if n % 5 == 0:
            ap[101] -= rng.randint(1, 50)  # a correction
        below = {c: {cid: v // (i + 2) for cid, v in ap.items()} for i, c in enumerate(COUNTIES)}
        snapshots = [race_snapshot("ap", version, dict(ap), below=below, feed_at=1.0)]
        if n % 3 == 0:
            # The state reports race 1 too, and its own race; mc its county and precincts.
            snapshots.append(race_snapshot("sos", n, {k: v + 7 for k, v in ap.items()},
                                           race_id=1, feed_at=1.0))
            snapshots.append(race_snapshot("sos", n, {301: n * 10, 302: n}, race_id=3,
                                           feed_at=1.0))
            snapshots.append(race_snapshot("mc", n, {201: n * 3, 202: 5},
                                           below={"P1": {201: n, 202: 1}}, feed_at=1.0,
                                           vote_types={"early": {201: n, 202: 2}}))
        if n % 4 == 0:
            # An older version arriving late, and the same one twice: nothing changes.
            snapshots.append(race_snapshot("ap", version - 15, {101: 10**6}, feed_at=1.0))
            snapshots.append(snapshots[0])
        if n % 6 == 0:
            # A newer version first, then the one it follows: the later one is a no-op.
            ap[102] += 1
            snapshots.insert(0, race_snapshot("ap", version + 5, dict(ap), below=below,
                                              feed_at=1.0))
        apply_at(database, seconds, *snapshots)
        times.append(seconds)
        if n % 8 == 0:
            # The same figures again at a newer version, later: no change, so no point.
            seconds += 0.3
            apply_at(database, seconds, race_snapshot("ap", version + 7, dict(ap), below=below,
                                                      feed_at=1.0))
        if n == 25:
            with database.Session.begin() as session:
                wipeout(session)
            ap = {101: 0, 102: 0, 103: 0, 104: 0}
    # Since: at, just after and just before some changes (within their millisecond too).
    moments = [at(s + d) for s in times[::3] for d in (0, 0.0002, -0.0002, 0.0007)]
    moments += [at(-3600), at(times[-1] + 3600)]
    assert assert_same_answers(database, moments) > 100
    with database.Session() as session:
        assert audit(session) == []


@st.composite
def nights(draw):
    """Reports of race 1 by ap (state and counties) and sos, with gaps, repeats and wipeouts."""
    steps = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["ap", "ap", "sos", "same", "wipe"]))
        gap = draw(st.sampled_from([0.0, 0.0004, 0.001, 0.5, 1.0, 2.3, 59.9996, 3600.0]))
        version = draw(st.integers(1, 12))  # repeats and reordering come for free
        figures = {cid: draw(st.integers(0, 500)) for cid in (101, 102)}
        steps.append((kind, gap, version, figures))
    sinces = draw(st.lists(st.floats(-1, 8000), max_size=3))
    points = draw(st.integers(2, 12))
    return steps, sinces, points


@pytest.mark.slow  # thorough: seconds each; CI and the full suite run it
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(night=nights())
def test_any_night_reads_the_same_from_the_series_as_from_the_history(database, empty_tables,
                                                                      night):
    steps, sinces, points = night
    empty_tables(database)
    seconds, last = 0.0, None
    for kind, gap, version, figures in steps:
        seconds += gap
        if kind == "wipe":
            with database.Session.begin() as session:
                wipeout(session)
            continue
        source = "ap" if kind == "same" else kind
        snapshot = race_snapshot(source, version, figures, race_id=1, feed_at=1.0,
                                 below={"Pima": {101: figures[101] // 2}} if kind == "ap"
                                 else None)
        if kind == "same" and last is not None:
            apply_at(database, last, snapshot)  # a second batch at the same moment
        else:
            apply_at(database, seconds, snapshot)
            last = seconds
    moments = [at(s) for s in sinces]
    assert_same_answers(database, moments, races=(1,), max_points=(MAX_POINTS, points))
    with database.Session() as session:
        assert audit(session) == []


# -- what the series is -----------------------------------------------------------------------

def series(database, race_id=1) -> list[tuple]:
    with database.Session() as session:
        return [tuple(row) for row in session.execute(
            select(SeriesRow.source_id, SeriesRow.rank, SeriesRow.candidate_id, SeriesRow.at,
                   SeriesRow.votes)
            .where(SeriesRow.race_id == race_id)
            .order_by(SeriesRow.source_id, SeriesRow.rank, SeriesRow.candidate_id, SeriesRow.at)
        )]


def test_one_row_per_total_tally_and_transaction_that_changed_it(database):
    apply_at(database, 0, race_snapshot("ap", 1, {101: 100, 102: 50},
                                        vote_types={"early": {101: 60}},
                                        below={"Pima": {101: 100}}))
    # Two batches in one transaction: one row, the figure after both.
    apply_at(database, 10, race_snapshot("ap", 2, {101: 120, 102: 50}),
             race_snapshot("ap", 3, {101: 125, 102: 50}))
    apply_at(database, 20, race_snapshot("ap", 4, {101: 125, 102: 50}))  # nothing changed
    zero, ten = at(0).timestamp(), at(10).timestamp()
    state, county = 1, 3
    assert series(database) == [
        ("ap", state, 101, zero, 100), ("ap", state, 101, ten, 125),
        ("ap", state, 102, zero, 50),
        ("ap", county, 101, zero, 100),
    ]


def test_a_batch_that_reaches_a_tally_after_a_later_one_takes_its_time(database):
    """Series follow commit order: the newest row of each is the tally, whatever the clocks."""
    apply_at(database, 10, race_snapshot("ap", 2, {101: 200}))
    # Began earlier (its clock says 5 s) but reached the tally after the 10 s batch.
    apply_at(database, 5, race_snapshot("ap", 3, {101: 300}))
    assert series(database) == [("ap", 1, 101, at(10).timestamp(), 300)]
    with database.Session() as session:
        assert audit(session) == []
        assert as_utc(session.scalar(select(TallyRow.last_update_at).where(
            TallyRow.candidate_id == 101, TallyRow.rank == 1))) == at(10)


def test_a_transaction_that_began_first_and_committed_last_keeps_the_series_on_the_tally(
        database):
    """PostgreSQL's now() is when a transaction began: the later commit must not go back."""
    if database.dialect != "postgresql":
        return  # SQLite writes one transaction at a time; the test above covers its clock
    apply_at(database, 0, race_snapshot("ap", 1, {101: 100}))
    with database.Session() as early:
        early.execute(text("SELECT 1"))  # its transaction, and its now(), begin here
        time.sleep(0.05)
        with database.Session.begin() as late:
            record_snapshots(late, [race_snapshot("ap", 2, {101: 200})])
        record_snapshots(early, [race_snapshot("ap", 3, {101: 300})])
        early.commit()
    rows = series(database)
    assert rows[-1][4] == 300 and [r[3] for r in rows] == sorted(r[3] for r in rows)
    with database.Session() as session:
        assert audit(session) == []


def test_wipeout_empties_the_series(database):
    apply_at(database, 0, race_snapshot("ap", 1, {101: 100}))
    with database.Session.begin() as session:
        counts = wipeout(session)
    assert counts["series"] == 1 and series(database) == []


def test_audit_finds_a_tampered_or_missing_series_row(database):
    apply_at(database, 0, race_snapshot("ap", 1, {101: 100, 102: 7}))
    apply_at(database, 10, race_snapshot("ap", 2, {101: 150, 102: 9}))
    with database.Session.begin() as s:
        s.execute(update(SeriesRow).where(SeriesRow.candidate_id == 101,
                                          SeriesRow.at == at(10).timestamp()).values(votes=151))
        s.execute(delete(SeriesRow).where(SeriesRow.candidate_id == 102))
    with database.Session() as s:
        found = [(d.against, d.key[2], d.found, d.reference) for d in audit(s)]
    assert found == [("tally", 101, 151, 150), ("tally", 102, None, 9)]


def test_an_older_series_row_tampered_is_not_the_audits_business(database):
    """The audit checks where each series ends; its past is the history's to answer for."""
    apply_at(database, 0, race_snapshot("ap", 1, {101: 100}))
    apply_at(database, 10, race_snapshot("ap", 2, {101: 150}))
    with database.Session.begin() as s:
        s.execute(update(SeriesRow).where(SeriesRow.at == at(0).timestamp()).values(votes=1))
    with database.Session() as s:
        assert audit(s) == []


def _alembic(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.driver_url(url).replace("%", "%%"))
    return config


def test_migrating_an_existing_history_builds_its_series(database):
    """0003 sums the history of a database that had no series into one that reads the same."""
    for version, seconds in ((1, 0), (2, 0.5), (3, 61), (4, 61.25), (5, 3600)):
        apply_at(database, seconds, race_snapshot(
            "ap", version, {101: 100 * version, 102: 7 + version % 2},
            below={"Pima": {101: 10 * version}}))
        apply_at(database, seconds, race_snapshot("sos", version, {301: version}, race_id=3))
    before = series(database) + series(database, 3)
    url = database.engine.url.render_as_string(hide_password=False)
    command.downgrade(_alembic(url), "0002")
    try:
        with database.engine.connect() as connection:
            tables = {row[0] for row in connection.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                if database.dialect == "sqlite" else
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))}
        assert "series" not in tables
    finally:
        command.upgrade(_alembic(url), "head")
    assert series(database) + series(database, 3) == before
    assert_same_answers(database, [at(0), at(30), at(61.25)], races=(1, 3))
