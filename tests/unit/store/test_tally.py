"""How a snapshot reaches the tally: newest version wins, exactly once, in any order."""

import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update

from rome.feeds.snapshot import LEVEL_RANK, Snapshot
from rome.read.results import level_disagreements, race_views
from rome.store.audit import audit
from rome.store.models import CurrentRow, HistoryRow, TallyRow
from rome.store.tally import record_snapshots, reject_payload, wipeout
from tests.helpers.builders import race_snapshot

STATE, COUNTY = LEVEL_RANK["state"], LEVEL_RANK["county"]


def totals(database, rank=STATE):
    """Return {(candidate, source): votes} of total-vote tallies at rank."""
    with database.Session() as session:
        return {(t.candidate_id, t.source_id): t.votes for t in session.scalars(
            select(TallyRow).where(TallyRow.rank == rank, TallyRow.vote_type == "total"))}


def apply(database, *snapshots):
    with database.Session.begin() as session:
        return record_snapshots(session, list(snapshots))


def history_rows(database):
    with database.Session() as session:
        return session.scalar(select(func.count()).select_from(HistoryRow))


def test_the_newest_version_wins_and_older_or_equal_ones_change_nothing(database):
    apply(database, race_snapshot("ap", 5, {101: 500, 102: 400}))
    older = apply(database, race_snapshot("ap", 4, {101: 900, 102: 900}))
    same = apply(database, race_snapshot("ap", 5, {101: 500, 102: 400}))
    assert (older.applied, older.stale) == (0, 2)
    assert (same.applied, same.stale) == (0, 2)
    assert totals(database) == {(101, "ap"): 500, (102, "ap"): 400}
    newer = apply(database, race_snapshot("ap", 6, {101: 550, 102: 400}))
    # Both counts move to version 6; only one figure changed.
    assert (newer.applied, newer.changed, newer.corrections) == (2, 1, 0)
    assert totals(database) == {(101, "ap"): 550, (102, "ap"): 400}
    assert history_rows(database) == 3
    with database.Session() as s:
        assert audit(s) == []


def test_a_lower_figure_at_a_newer_version_is_a_correction_kept_in_history(database):
    apply(database, race_snapshot("ap", 1, {101: 500}))
    result = apply(database, race_snapshot("ap", 2, {101: 480}))
    assert (result.changed, result.corrections) == (1, 1)
    assert totals(database) == {(101, "ap"): 480}
    with database.Session() as s:
        assert audit(s) == []
    with database.Session() as s:
        deltas = [h.delta for h in s.scalars(select(HistoryRow).order_by(HistoryRow.id))]
        tally = s.scalars(select(TallyRow).where(TallyRow.rank == STATE)).one()
        view = next(r for r in race_views(s) if r.id == 1)
    assert deltas == [500, -20]
    assert (tally.changes, tally.corrections) == (2, 1)
    assert view.sources[0].corrections == 1


def test_a_rolled_back_batch_leaves_nothing(database):
    with pytest.raises(RuntimeError), database.Session.begin() as s:
        record_snapshots(s, [race_snapshot("ap", 1, {101: 100})])
        raise RuntimeError("worker died before commit")
    assert totals(database) == {}
    assert apply(database, race_snapshot("ap", 1, {101: 100})).applied == 1
    assert totals(database) == {(101, "ap"): 100}


def test_levels_are_tallied_apart_and_a_disagreement_is_flagged(database):
    below = {"Maricopa": {101: 300, 102: 200}, "Pima": {101: 100, 102: 150}}
    # The state row says 401 for 101: one more than its counties sum to.
    result = apply(database, race_snapshot("ap", 1, {101: 401, 102: 350}, below=below))
    assert totals(database) == {(101, "ap"): 401, (102, "ap"): 350}
    assert totals(database, COUNTY) == {(101, "ap"): 400, (102, "ap"): 350}
    with database.Session() as s:
        view = next(r for r in race_views(s) if r.id == 1)
    ap = view.sources[0]
    # Never double-counted: the race's figure is the state row, not state + counties.
    assert view.total_votes == 751 and ap.level == "state"
    assert [(d.candidate_id, d.votes, d.below_votes) for d in ap.disagreements] == [
        (101, 401, 400)]
    assert (ap.units_reporting, ap.units_total, ap.units_level) == (2, 2, "county")
    with database.Session() as s:  # what caesar logs after the batch
        flags = level_disagreements(s, result.races)
    assert [(f["source"], f["candidate_id"], f["difference"]) for f in flags] == [("ap", 101, 1)]


def test_two_sources_of_one_race_stand_side_by_side(database):
    apply(database, race_snapshot("ap", 1, {101: 500, 102: 400}),
          race_snapshot("sos", 1, {101: 510, 102: 400}, race_id=1))
    with database.Session() as s:
        view = next(r for r in race_views(s) if r.id == 1)
    assert [s.id for s in view.sources] == ["ap", "sos"]  # the catalog's order: AP first
    assert view.candidates[0].by_source == {"ap": 500, "sos": 510}
    assert view.candidates[0].votes == 500 and view.sources_disagree


def test_vote_types_calls_and_test_flags_are_kept(database):
    apply(database, race_snapshot("sos", 3, {301: 90, 302: 60}, race_id=3, winner=301, test=True,
                                  vote_types={"early": {301: 40, 302: 30}},
                                  precincts=(7, 9)))
    with database.Session() as s:
        view = next(r for r in race_views(s) if r.id == 3)
    assert view.candidates[0].vote_types == {"early": 40}
    assert view.winner_id == 301 and view.test
    sos = next(s for s in view.sources if s.id == "sos")
    assert (sos.precincts_reporting, sos.precincts_total) == (7, 9)


def test_audit_finds_a_tampered_tally_and_a_tampered_count(database):
    apply(database, race_snapshot("ap", 1, {101: 100, 102: 7}))
    with database.Session.begin() as s:
        s.execute(update(TallyRow).where(TallyRow.candidate_id == 101).values(votes=99))
        s.execute(update(CurrentRow).where(CurrentRow.candidate_id == 102).values(votes=8))
    with database.Session() as s:
        found = {(d.against, d.key[3] if d.against == "history" else d.key[2])
                 for d in audit(s)}
    # The series still ends on 101's true figure: it disagrees with the tampered tally too.
    assert found == {("recomputed", 101), ("recomputed", 102), ("history", 102), ("tally", 101)}


def test_wipeout_empties_every_result_and_the_next_report_restores_totals(database):
    apply(database, race_snapshot("ap", 1, {101: 100}))
    with database.Session.begin() as s:
        counts = wipeout(s)
    assert counts["tallies"] == 1 and counts["history"] == 1
    assert totals(database) == {}
    # Cumulative feeds: the next report brings the figure back, whatever its version.
    apply(database, race_snapshot("ap", 1, {101: 100}))
    assert totals(database) == {(101, "ap"): 100}


@st.composite
def reports(draw):
    """A stream of versions of ap's state row for two candidates, with corrections."""
    versions = draw(st.lists(st.integers(1, 30), min_size=1, max_size=12, unique=True))
    return [(v, {101: draw(st.integers(0, 1000)), 102: draw(st.integers(0, 1000))})
            for v in versions]


@pytest.mark.slow  # thorough: seconds each; CI and the full suite run it
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), stream=reports())
def test_any_order_any_duplication_any_split_same_final_state(database, empty_tables, data,
                                                              stream):
    """Property: shuffling, duplicating and splitting a stream never changes the final state."""
    newest = max(stream)[1]
    snapshots = [race_snapshot("ap", v, figures, feed_at=1.0) for v, figures in stream]
    snapshots += data.draw(st.lists(st.sampled_from(snapshots), max_size=6))
    snapshots = data.draw(st.permutations(snapshots))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(snapshots)), max_size=3)))
    empty_tables(database)
    for start, end in zip([0, *cuts], [*cuts, len(snapshots)], strict=True):
        apply(database, *snapshots[start:end])
    assert totals(database) == {(c, "ap"): v for c, v in newest.items()}
    with database.Session() as s:
        assert audit(s) == []


def test_equal_versions_with_different_figures_settle_the_same_whatever_the_order(database,
                                                                                 empty_tables):
    a, b = race_snapshot("ap", 7, {101: 10}), race_snapshot("ap", 7, {101: 12})
    results = []
    for order in ((a, b), (b, a)):
        empty_tables(database)
        for snapshot in order:
            apply(database, snapshot)
        results.append(totals(database))
    assert results == [{(101, "ap"): 12}] * 2


def test_rejected_payload_keeps_bytes_and_nul_readable(database):
    with database.Session.begin() as s:
        row = reject_payload(s, "ap\x00", b"\x80\x04pickle\x00\xff", "bad\x00reason")
    with database.Session() as s:
        stored = s.get(type(row), row.id)
    assert stored.payload == "\\x80\x04pickle\\x00\\xff"
    assert stored.source_id == "ap" and stored.reason == "bad\\x00reason"


def test_concurrent_overlapping_batches_neither_deadlock_nor_double(database, empty_tables):
    """Batches of many units, applied at once in opposite orders, settle on the newest."""
    empty_tables(database)
    units = [f"County {i}" for i in range(60)]
    snapshots = [
        race_snapshot("ap", v, {101: v * 60, 102: v}, below={u: {101: v, 102: 0} for u in units})
        for v in range(1, 25)
    ]
    errors: list[Exception] = []

    def run(seed):
        shuffled = snapshots[:]
        random.Random(seed).shuffle(shuffled)
        for start in range(0, len(shuffled), 4):
            try:
                apply(database, *shuffled[start:start + 4])
            except Exception as exc:  # a deadlock or a lock timeout would land here
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert totals(database) == {(101, "ap"): 24 * 60, (102, "ap"): 24}
    assert totals(database, COUNTY) == {(101, "ap"): 24 * 60, (102, "ap"): 0}
    with database.Session() as s:
        assert audit(s) == []


def test_a_batch_rolled_back_on_a_new_connection_does_not_break_the_next(pg_url, empty_tables):
    """The staging table dies with a rolled-back transaction; the next batch must not care."""
    from rome.store import db

    fresh = db.connect(pg_url)  # a new pool: its first connection has no staging table yet
    try:
        empty_tables(fresh)
        with pytest.raises(RuntimeError), fresh.Session.begin() as s:
            record_snapshots(s, [race_snapshot("ap", 1, {101: 100})])
            raise RuntimeError("worker died before commit")
        assert apply(fresh, race_snapshot("ap", 1, {101: 100})).applied == 1
        assert totals(fresh) == {(101, "ap"): 100}
    finally:
        fresh.engine.dispose()


def test_a_lost_server_during_copy_is_an_sqlalchemy_error(database):
    """Raw-cursor errors are wrapped, so the task's outage handling sees them."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if database.dialect != "postgresql":
        pytest.skip("the COPY path is PostgreSQL's")
    with database.Session() as s:
        record_snapshots(s, [race_snapshot("ap", 1, {101: 1})])  # reference rows exist
        s.rollback()
        pid = s.execute(text("SELECT pg_backend_pid()")).scalar()
        with database.engine.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killer.commit()
        with pytest.raises((OperationalError, InterfaceError)):
            record_snapshots(s, [race_snapshot("ap", 1, {101: 100})])


def test_an_ap_initialization_file_stores_races_and_candidates_before_any_count(database):

    from rome.feeds.formats import parse_feed
    from tests.helpers.paths import FIXTURES

    body = (FIXTURES / "ap/20151103_national_initialization.json")
    init = parse_feed("ap", body.read_bytes(), source="elex")
    assert init.counts == () and init.races
    apply(database, init)
    with database.Session() as s:
        views = {v.id: v for v in race_views(s) if v.sources and v.sources[0].id == "elex"}
    assert len(views) == len(init.races)
    race = next(iter(views.values()))
    assert race.candidates and race.total_votes == 0 and race.sources[0].version == init.version


def test_fields_longer_than_their_columns_are_bad_input_not_a_poison(database):
    """Caught when the snapshot is decoded, so caesar never retries a batch the database refuses."""
    from dataclasses import replace

    from rome.feeds.snapshot import InvalidPayload

    good = race_snapshot("ap", 1, {101: 5})
    for bad in (replace(good, races=(replace(good.races[0], state="X" * 17),)),
                replace(good, candidates=(replace(good.candidates[0], party="P" * 17),
                                          *good.candidates[1:]))):
        with pytest.raises(InvalidPayload):
            Snapshot.from_wire(bad.to_wire())


@pytest.mark.parametrize("day", ["2016-11-31", "11/8/2016", "2016-11-8", 20161108, None])
def test_an_election_date_that_is_no_day_is_bad_input(day):
    from rome.feeds.snapshot import InvalidPayload

    wire = {**race_snapshot("ap", 1, {101: 5}).to_wire(), "election_date": day}
    with pytest.raises(InvalidPayload, match="election date must be YYYY-MM-DD"):
        Snapshot.from_wire(wire)


def test_the_election_date_crosses_the_wire_and_older_messages_have_none():
    from dataclasses import replace

    dated = replace(race_snapshot("ap", 1, {101: 5}), election_date="2016-11-08")
    assert Snapshot.from_wire(dated.to_wire()).election_date == "2016-11-08"
    older = {k: v for k, v in dated.to_wire().items() if k != "election_date"}
    assert Snapshot.from_wire(older).election_date == ""


def test_what_a_forged_batch_can_and_cannot_do(database):
    """What docs/security.md says of the broker login: caesar checks shape, not truth."""
    from rome.feeds.snapshot import MAX_VERSION, MAX_VOTES, CandidateRef, Count, RaceRef, UnitRef
    from rome.feeds.snapshot import InvalidPayload as Invalid
    from rome.store.models import CandidateRow, RaceRow

    forged = Snapshot(
        source="evil", format="ap", version=MAX_VERSION, feed_at=0.0,
        races=(RaceRef("r", "A race nobody runs"),), units=(UnitRef("TOP", "Top", "state"),),
        candidates=(CandidateRef("r", "c", "Fake", "Candidate", "GOP"),),
        counts=(Count("r", "TOP", "c", MAX_VOTES - 1),),
    )
    # Held: every field's type and range, and every reference inside the batch.
    wire = forged.to_wire()
    for bad in ({"version": MAX_VERSION + 1}, {"counts": [["r", "TOP", "c", MAX_VOTES + 1,
                                                           "total"]]},
                {"counts": [["other race", "TOP", "c", 1, "total"]]}):
        with pytest.raises(Invalid):
            Snapshot.from_wire({**wire, **bad})
    # Not held: a race, a candidate and a source never seen are created on first sight
    # (that is how replayed feeds work), at the highest version there is.
    apply(database, Snapshot.from_wire(wire))
    with database.Session() as s:
        race = s.scalar(select(RaceRow).where(RaceRow.name == "A race nobody runs"))
        assert race is not None
        assert s.scalar(select(CandidateRow).where(CandidateRow.race_id == race.id)) is not None
        # The audit checks the tables agree with each other, not with the feeds: green.
        assert audit(s) == []
    with database.Session.begin() as s:
        wipeout(s)
    with database.Session() as s:  # a wipeout deletes results, not races or candidates
        assert s.scalar(select(RaceRow).where(RaceRow.name == "A race nobody runs")) is not None


def _joins_of_two_ctes(node: dict) -> list[str]:
    """The join nodes of an EXPLAIN (FORMAT JSON) plan whose two inputs are both CTE scans."""
    children = node.get("Plans", [])
    found = [node["Node Type"]] if len(children) == 2 and all(
        child["Node Type"] == "CTE Scan" for child in children) else []
    return found + [join for child in children for join in _joins_of_two_ctes(child)]


def test_the_apply_never_joins_two_of_its_own_results(database):
    """Two CTEs are estimated at a row each, whatever they hold: a join of them is planned as
    a nested loop, quadratic in the batch's tallies (it took 7 s for 6,000 tallies, and
    131 s for a batch of 5,000 races). The apply feeds the series from its own upsert."""
    import io

    from rome.feeds.catalog import default_catalog
    from rome.store.tally import SQL, STAGE, apply_params, copy_text, count_rows, plan_scopes
    from tests.helpers.builders import national_snapshot

    if database.dialect != "postgresql":
        pytest.skip("the one-statement apply is PostgreSQL's")
    with database.Session() as session:
        rows = count_rows(session, [national_snapshot(200)], default_catalog()).rows
        cursor = session.connection().connection.dbapi_connection.cursor()
        cursor.execute(STAGE)
        cursor.copy_expert("COPY count_stage FROM STDIN", io.StringIO(copy_text(rows)))
        plan_scopes(cursor)
        cursor.execute("EXPLAIN (FORMAT JSON) " + SQL["apply"], apply_params())
        plan = cursor.fetchone()[0][0]["Plan"]
        session.rollback()
    assert _joins_of_two_ctes(plan) == []
