"""Pay for what changed: a snapshot naming all of a race moves its scope, not every count.

The guarantees stay those of per-count versions (newest wins, the larger figure
on a tie, any order ends the same, corrections counted): checked here against
a model of per-count versions on long shuffled streams of whole and partial
snapshots, late ones included; and the rows written are counted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from rome.feeds.national import changed, national
from rome.store.audit import audit
from rome.store.models import CountScopeRow, CurrentRow, HistoryRow, TallyRow, UnitRow
from rome.store.rollback import rollback_source
from rome.store.tally import counts_by_race, record_snapshots, scope_digests
from tests.helpers.builders import race_snapshot

UNITS = [f"County {i}" for i in range(6)]


def apply(database, *snapshots):
    with database.Session.begin() as session:
        return record_snapshots(session, list(snapshots))


def stored(database) -> dict[tuple, int]:
    """{(race, unit name, candidate): votes} of every current count."""
    with database.Session() as session:
        names = dict(session.execute(select(UnitRow.id, UnitRow.name)).all())
        return {(c.race_id, names[c.unit_id], c.candidate_id): c.votes
                for c in session.scalars(select(CurrentRow))}


def tallies(database) -> dict[tuple, int]:
    with database.Session() as session:
        return {(t.race_id, t.rank, t.candidate_id): t.votes
                for t in session.scalars(select(TallyRow)) if t.votes or t.units}


@st.composite
def streams(draw):
    """Snapshots of two races: each names all or some of its units, at any version."""
    out = []
    for _ in range(draw(st.integers(1, 40))):
        race = draw(st.sampled_from([1, 3]))
        one, two = (101, 102) if race == 1 else (301, 302)
        units = draw(st.sampled_from([UNITS, UNITS[:3], UNITS[2:], UNITS[::2]]))
        version = draw(st.integers(1, 25))
        figures = {u: {one: draw(st.integers(0, 9)), two: draw(st.integers(0, 9))}
                   for u in units}
        out.append((race, version, figures))
    return out


def apply_shuffled(database, empty_tables, data, stream, max_cuts: int) -> tuple[dict, list]:
    """Apply the stream's snapshots in an order and batches drawn by data, on empty tables;
    return {(race, unit, candidate): votes} as per-count versions say, and the snapshots."""
    want: dict[tuple, tuple[int, int]] = {}
    made = []
    for race, version, figures, *twin in stream:
        seen = [(unit, candidate, votes) for unit, by in figures.items()
                for candidate, votes in by.items()]
        snapshot = race_snapshot("ap", version, {}, race_id=race, below=figures, feed_at=1.0)
        if twin and twin[0] is not None:
            # The snapshot's first count named twice, the second time with twin's figure:
            # per-count versions take the larger.
            first = snapshot.counts[0]
            seen.append((*seen[0][:2], twin[0]))
            snapshot = replace(snapshot, counts=(first, replace(first, votes=twin[0]),
                                                 *snapshot.counts[1:]))
        for unit, candidate, votes in seen:
            key = (race, unit, candidate)
            want[key] = max(want.get(key, (0, -1)), (version, votes))
        made.append(snapshot)
    snapshots = data.draw(st.permutations(made))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(snapshots)), max_size=max_cuts)))
    empty_tables(database)
    for start, end in zip([0, *cuts], [*cuts, len(snapshots)], strict=True):
        if start < end:
            apply(database, *snapshots[start:end])
    return {key: votes for key, (_, votes) in want.items()}, snapshots


@pytest.mark.slow  # thorough: seconds each; CI and the full suite run it
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), stream=streams())
def test_long_shuffled_streams_end_as_per_count_versions_do(database, empty_tables, data, stream):
    """Property: whole and partial snapshots, late ones and repeats, in any order and any
    batches, leave every count at its newest version's figure (the larger on a tie)."""
    ends_as_per_count_versions_do(database, empty_tables, data, stream, max_cuts=4)


def ends_as_per_count_versions_do(database, empty_tables, data, stream, max_cuts: int) -> None:
    """Apply the stream shuffled and in batches: its counts, tallies and an audit are what
    per-count versions say, and what applying it in version order leaves."""
    want, snapshots = apply_shuffled(database, empty_tables, data, stream, max_cuts=max_cuts)
    assert stored(database) == want
    sums: dict[tuple, int] = defaultdict(int)
    for (race, _, candidate), votes in want.items():
        sums[(race, 3, candidate)] += votes  # the counties' rank
    assert {k: v for k, v in tallies(database).items() if k[1] == 3} == dict(sums)
    with database.Session() as session:
        assert audit(session) == []
    # What a fresh apply in version order gives, history and all.
    in_order = stored(database), tallies(database)
    empty_tables(database)
    for snapshot in sorted(snapshots, key=lambda s: s.version):
        apply(database, snapshot)
    assert (stored(database), tallies(database)) == in_order


def test_a_late_snapshot_never_overwrites_what_a_whole_one_left_unchanged(database, empty_tables):
    empty_tables(database)
    apply(database, race_snapshot("ap", 1, {}, below={u: {101: 1} for u in UNITS}))
    apply(database, race_snapshot("ap", 5, {}, below={u: {101: 1} for u in UNITS}))  # unchanged
    late = apply(database, race_snapshot("ap", 3, {}, below={u: {101: 7} for u in UNITS}))
    assert late.applied == 0 and set(stored(database).values()) == {1}
    # A late snapshot naming a county the race never had is taken for that county only.
    apply(database, race_snapshot("ap", 2, {}, below={"New": {101: 4}, UNITS[0]: {101: 9}}))
    assert {k[1]: v for k, v in stored(database).items()} == {**dict.fromkeys(UNITS, 1),
                                                               "New": 4}
    apply(database, race_snapshot("ap", 4, {}, below={"New": {101: 6}, UNITS[0]: {101: 8}}))
    assert {k[1]: v for k, v in stored(database).items()} == {**dict.fromkeys(UNITS, 1),
                                                               "New": 6}
    with database.Session() as session:
        assert audit(session) == []


def test_a_rollback_below_a_scope_leaves_the_counts_open_to_the_versions_undone(database,
                                                                                 empty_tables):
    empty_tables(database)
    apply(database, race_snapshot("ap", 1, {}, below={u: {101: 1} for u in UNITS}))
    apply(database, race_snapshot("ap", 9, {}, below={u: {101: 1} for u in UNITS}))
    with database.Session.begin() as session:
        rollback_source(session, "ap", above=2)
        assert set(session.scalars(select(CountScopeRow.version))) == {0}
    apply(database, race_snapshot("ap", 5, {}, below={u: {101: 3} for u in UNITS}))
    assert set(stored(database).values()) == {3}


def written(session) -> int:
    """Rows this transaction inserted or updated in current_counts: their row versions
    carry its transaction id (PostgreSQL's xmin)."""
    return session.execute(text(
        "SELECT count(*) FROM current_counts "
        "WHERE xmin::text = (txid_current() % 4294967296)::text")).scalar_one()


@pytest.mark.slow  # thorough: seconds each; CI and the full suite run it
def test_a_version_writes_the_rows_whose_figures_changed_and_no_others(database, empty_tables):
    if database.engine.dialect.name != "postgresql":
        rows = None  # SQLite keeps no such count; the figures are checked all the same
    empty_tables(database)
    fresh = national(races_per_state=2)
    apply(database, fresh)
    one = changed(fresh, 0.01, seed=1)
    same = changed(one, 0.0, seed=2)
    moved = round(len(fresh.counts) * 0.01)
    for snapshot, changes in ((one, moved), (same, 0)):
        with database.Session.begin() as session:
            result = record_snapshots(session, [snapshot])
            if database.engine.dialect.name == "postgresql":
                rows = written(session)
        assert (result.applied, result.changed) == (len(fresh.counts), changes)
        if rows is not None:
            assert rows == changes <= 0.02 * len(fresh.counts)
    with database.Session() as session:
        assert session.scalar(select(text("count(*)")).select_from(HistoryRow)) == (
            len(fresh.counts) + moved)
        assert audit(session) == []
    # The unchanged counts stand at the newest version: the first one, late, changes nothing.
    late = apply(database, changed(fresh, 0.5, seed=3, seconds=10))
    assert late.applied == 0
    assert sorted(stored(database).values()) == sorted(n.votes for n in same.counts)


def test_migrating_down_writes_each_scopes_version_back_into_its_counts(database, empty_tables):
    from alembic import command
    from alembic.config import Config

    from rome.store import db

    empty_tables(database)
    apply(database, race_snapshot("ap", 1, {101: 5}, below={"A": {101: 5}}))
    apply(database, race_snapshot("ap", 7, {101: 5}, below={"A": {101: 5}}))  # no row rewritten
    with database.Session() as session:
        assert set(session.scalars(select(CurrentRow.version))) == {1}
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    url = database.engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", db.driver_url(url).replace("%", "%%"))
    command.downgrade(config, "0005")
    try:
        with database.engine.connect() as connection:
            assert {v for (v,) in connection.execute(
                text("SELECT version FROM current_counts"))} == {7}
    finally:
        command.upgrade(config, "head")
    # Without a scope, each count's own version stands: 7 again, and 6 is too old.
    assert apply(database, race_snapshot("ap", 6, {101: 9}, below={"A": {101: 9}})).applied == 0


@st.composite
def repeating_streams(draw):
    """As streams, but each snapshot's figures are one of three sets drawn once per race:
    the same figures come back at other versions, whole and partial, as a quiet night's do."""
    sets = {race: [{u: {one: draw(st.integers(0, 9)), two: draw(st.integers(0, 9))}
                    for u in UNITS} for _ in range(3)]
            for race, (one, two) in ((1, (101, 102)), (3, (301, 302)))}
    out = []
    for _ in range(draw(st.integers(1, 30))):
        race = draw(st.sampled_from([1, 3]))
        figures = draw(st.sampled_from(sets[race]))
        units = draw(st.sampled_from([UNITS, UNITS, UNITS, UNITS[:3], UNITS[2:]]))
        out.append((race, draw(st.integers(1, 12)), {u: figures[u] for u in units}))
    return out


@pytest.mark.slow  # thorough: seconds each; CI and the full suite run it
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), stream=repeating_streams())
def test_the_same_figures_again_in_any_order_end_as_per_count_versions_do(database, empty_tables,
                                                                          data, stream):
    """Property: a snapshot whose figures a race's scope already holds is not staged (its
    digest matches), and the night still ends as per-count versions say, in any order."""
    want, _ = apply_shuffled(database, empty_tables, data, stream, max_cuts=3)
    assert stored(database) == want
    with database.Session() as session:
        assert audit(session) == []


@st.composite
def recurring_unit_streams(draw):
    """As streams, but each unit's figures are one of three drawn once per race and unit
    (some naming one candidate only), picked unit by unit: a unit's figures come back
    while others change, as a county that has finished counting does."""
    options = {race: {u: [draw(st.sampled_from([{one: a, two: b}, {one: a}]))
                          for a, b in draw(st.lists(st.tuples(st.integers(0, 9),
                                                              st.integers(0, 9)),
                                                    min_size=3, max_size=3))]
                      for u in UNITS}
               for race, (one, two) in ((1, (101, 102)), (3, (301, 302)))}
    out = []
    for _ in range(draw(st.integers(1, 30))):
        race = draw(st.sampled_from([1, 3]))
        units = draw(st.sampled_from([UNITS, UNITS, UNITS, UNITS[:3], UNITS[2:]]))
        out.append((race, draw(st.integers(1, 12)),
                    {u: draw(st.sampled_from(options[race][u])) for u in units}))
    return out


@pytest.mark.slow  # thorough: seconds each; CI and the full suite run it
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), stream=recurring_unit_streams())
def test_units_with_the_same_figures_again_end_as_per_count_versions_do(
        database, empty_tables, data, stream):
    """Property: a newer snapshot's units whose figures the race's digests already hold are
    not staged (their counts move with the scope), and the night still ends as per-count
    versions say, tallies and all, in any order and batches."""
    ends_as_per_count_versions_do(database, empty_tables, data, stream, max_cuts=3)


@st.composite
def recurring_count_streams(draw):
    """Snapshots naming every count of a race (or some of its units), each count's figure
    drawn from two: most of a newer version's counts come back as they were while a few
    change, inside units as across them, as a 1 %-changed version's do. Some name their
    first count twice (a feed can), with a figure of its own."""
    out = []
    for _ in range(draw(st.integers(1, 30))):
        race = draw(st.sampled_from([1, 3]))
        units = draw(st.sampled_from([UNITS, UNITS, UNITS, UNITS[:3]]))
        out.append((race, draw(st.integers(1, 12)),
                    {u: {race * 100 + 1: draw(st.integers(0, 1)),
                         race * 100 + 2: draw(st.integers(0, 1))} for u in units},
                    draw(st.sampled_from([None, None, None, 0, 1, 2]))))
    return out


@pytest.mark.slow  # thorough: seconds each; CI and the full suite run it
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), stream=recurring_count_streams())
def test_counts_with_the_same_figures_again_end_as_per_count_versions_do(
        database, empty_tables, data, stream):
    """Property: a newer snapshot's counts whose figures the race's digests already hold are
    not staged, even beside a changed count of the same unit (they move with the scope),
    and the night still ends as per-count versions say, tallies and all, in any order and
    batches."""
    ends_as_per_count_versions_do(database, empty_tables, data, stream, max_cuts=3)


def staged(monkeypatch) -> list[int]:
    """The rows each apply stages, as record_snapshots hands them to apply_rows."""
    from rome.store import tally

    sizes: list[int] = []
    real = tally.apply_rows

    def spy(session, rows, *args, **kwargs):
        sizes.append(len(rows))
        return real(session, rows, *args, **kwargs)

    monkeypatch.setattr(tally, "apply_rows", spy)
    return sizes


def test_the_same_figures_at_a_newer_version_stage_nothing_and_move_the_version(
        database, empty_tables, monkeypatch):
    empty_tables(database)
    sizes = staged(monkeypatch)
    figures = {u: {101: i, 102: 2 * i} for i, u in enumerate(UNITS)}
    apply(database, race_snapshot("ap", 1, {}, below=figures))
    again = apply(database, race_snapshot("ap", 5, {}, below=figures))
    assert sizes == [12]  # the second snapshot staged no count
    assert (again.applied, again.changed, again.stale) == (12, 0, 0)
    with database.Session() as session:
        assert session.scalar(select(CountScopeRow.version)) == 5
    # Its version stands for every count: a late one in between changes none.
    late = apply(database, race_snapshot("ap", 3, {}, below={u: {101: 99} for u in UNITS}))
    assert late.applied == 0 and 99 not in stored(database).values()
    # Older and the same: a no-op, also unstaged.
    assert apply(database, race_snapshot("ap", 2, {}, below=figures)).stale == 12
    assert apply(database, race_snapshot("ap", 6, {}, below={UNITS[0]: {101: 7, 102: 0}}))
    # A partial newer one wrote a count: the race's figures are no longer the digest's.
    apply(database, race_snapshot("ap", 7, {}, below=figures))
    assert stored(database)[(1, UNITS[0], 101)] == 0
    with database.Session() as session:
        assert audit(session) == []


def test_a_whole_snapshot_older_than_a_stored_count_keeps_no_digest(database, empty_tables):
    """v5 names the race whole but a count stays at v7's figure: v8 with v5's figures must
    be applied, not skipped as 'the same'."""
    empty_tables(database)
    figures = {u: {101: 1} for u in UNITS}
    apply(database, race_snapshot("ap", 1, {}, below=figures))
    apply(database, race_snapshot("ap", 7, {}, below={UNITS[0]: {101: 50}}))  # partial, newer
    apply(database, race_snapshot("ap", 5, {}, below={u: {101: 2} for u in UNITS}))  # late
    assert stored(database)[(1, UNITS[0], 101)] == 50
    apply(database, race_snapshot("ap", 8, {}, below={u: {101: 2} for u in UNITS}))
    assert set(stored(database).values()) == {2}


def test_a_rollback_forgets_the_digests_of_the_figures_it_undid(database, empty_tables):
    empty_tables(database)
    apply(database, race_snapshot("ap", 1, {}, below={u: {101: 1} for u in UNITS}))
    apply(database, race_snapshot("ap", 9, {}, below={u: {101: 4} for u in UNITS}))
    with database.Session.begin() as session:
        rollback_source(session, "ap", above=2)
    assert set(stored(database).values()) == {1}
    # v9's figures again, at v5: they are not what the counts hold now.
    apply(database, race_snapshot("ap", 5, {}, below={u: {101: 4} for u in UNITS}))
    assert set(stored(database).values()) == {4}


def test_a_newer_version_stages_only_the_counts_whose_figures_changed(database, empty_tables,
                                                                     monkeypatch):
    empty_tables(database)
    sizes = staged(monkeypatch)
    figures = {u: {101: i, 102: 2 * i} for i, u in enumerate(UNITS)}
    apply(database, race_snapshot("ap", 1, {}, below=figures))
    one = {**figures, UNITS[2]: {101: 50, 102: 4}}
    result = apply(database, race_snapshot("ap", 5, {}, below=one))
    assert sizes == [12, 1]  # the one count that changed, not its unit's other
    assert (result.applied, result.changed, result.stale) == (12, 1, 0)
    # Every count stands at version 5, the unstaged too: a late v3 changes none.
    assert apply(database, race_snapshot("ap", 3, {}, below={u: {101: 99} for u in UNITS})
                 ).applied == 0
    assert stored(database)[(1, UNITS[2], 101)] == 50
    # A unit gained a count: its keys differ, so nothing is left out (the race is staged).
    gained = {**one, UNITS[0]: {101: 0, 102: 0, 103: 1}}
    apply(database, race_snapshot("ap", 6, {}, below=gained))
    # A unit went missing: nothing is left out either, and the scope does not move.
    apply(database, race_snapshot("ap", 7, {}, below={u: one[u] for u in UNITS[1:]}))
    assert sizes == [12, 1, 6, 13, 10]  # the late v3 was staged whole (older)
    with database.Session() as session:
        assert session.scalar(select(CountScopeRow.version)) == 6
        assert audit(session) == []


def test_a_count_key_named_twice_is_staged_with_its_twin_and_counted_once(database, empty_tables,
                                                                          monkeypatch):
    """A feed naming one count twice (the larger figure wins, as in Maricopa's injected
    feed): a newer version changing one of the two stages its unit whole, not one twin
    alone, and the scope still moves."""
    empty_tables(database)
    sizes = staged(monkeypatch)

    def twice(version: int, first: int, second: int):
        snapshot = race_snapshot("ap", version, {}, below={u: {101: 5, 102: 6} for u in UNITS})
        twin = replace(snapshot.counts[0], votes=second)
        return replace(snapshot, counts=(replace(snapshot.counts[0], votes=first), twin,
                                         *snapshot.counts[1:]))

    apply(database, twice(1, 10, 3))
    key = next(k for k in stored(database) if k[1] == UNITS[0] and k[2] == 101)
    assert stored(database)[key] == 10
    apply(database, twice(2, 10, 4))  # the smaller twin changed: the larger still wins
    assert stored(database)[key] == 10 and sizes[-1] >= 2
    apply(database, twice(3, 2, 4))  # the larger twin fell: the other's figure stands
    assert stored(database)[key] == 4
    with database.Session() as session:
        assert session.scalar(select(CountScopeRow.version)) == 3
        assert audit(session) == []


def test_keys_that_would_read_two_ways_give_no_digest():
    """A race's keys are digested joined by NULs, which validated keys never hold: keys that
    do (a snapshot not validated) would read back two ways ("a\\0" then "b", or "a" then
    "\\0b"), so their race gets no digest and is staged whole, as before digests."""
    snapshot = race_snapshot("ap", 1, {}, below={u: {101: 5, 102: 6} for u in UNITS})
    ids = SimpleNamespace(races={race.key: 1 for race in snapshot.races})

    def digests(first: str, second: str):
        counts = (replace(snapshot.counts[0], unit=first), replace(snapshot.counts[1], unit=second))
        part = replace(snapshot, counts=counts)
        return scope_digests([part], [ids], [counts_by_race(part)])

    assert list(digests("a", "b")) == [(1, snapshot.source)]
    assert digests("a", "b")[(1, snapshot.source)].digest != digests("b", "a")[
        (1, snapshot.source)].digest
    assert digests("a\0", "b") == {} and digests("a", "\0b") == {}


def test_a_batch_making_a_scope_holds_no_other_scope_while_it_waits(database, empty_tables):
    """Batch A names race 1 (its scope there) and race 3 (its scope being made, uncommitted,
    by batch B): A must not wait for B while holding race 1's lock, for B goes on to lock
    race 1 in the same transaction. Locking race 1 first and then making race 3's scope
    would deadlock the two (PostgreSQL would abort one)."""
    import threading

    if database.engine.dialect.name != "postgresql":
        pytest.skip("row locks and concurrent transactions are PostgreSQL's")
    empty_tables(database)
    figures = {u: {101: 1, 102: 2} for u in UNITS[:2]}
    three = {u: {301: 1, 302: 2} for u in UNITS[:2]}
    # Race 3's feed keys known (resolved once, then its results wiped), its scope not.
    apply(database, race_snapshot("ap", 1, {}, race_id=3, below=three))
    empty_tables(database)
    apply(database, race_snapshot("ap", 1, {}, race_id=1, below=figures))
    with database.Session() as b:
        record_snapshots(b, [race_snapshot("ap", 1, {}, race_id=3, below=three)])
        outcome: dict = {}

        def batch_a():
            try:
                with database.Session.begin() as a:
                    outcome["pid"] = a.scalar(text("SELECT pg_backend_pid()"))
                    outcome["result"] = record_snapshots(a, [
                        race_snapshot("ap", 2, {}, race_id=1, below=figures),
                        race_snapshot("ap", 2, {}, race_id=3, below=three)])
            except Exception as exc:  # noqa: BLE001 - asserted below
                outcome["error"] = exc

        thread = threading.Thread(target=batch_a)
        thread.start()
        # A waits for B's transaction (to make race 3's scope), holding no lock of race 1.
        with database.engine.connect() as watch:
            for _ in range(200):
                waiting = watch.scalar(text(
                    "SELECT wait_event FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": outcome.get("pid", 0)})
                if waiting == "transactionid":
                    break
                threading.Event().wait(0.05)
            else:
                pytest.fail(f"batch A never waited for batch B: {outcome}")
        record_snapshots(b, [race_snapshot("ap", 3, {}, race_id=1, below=figures)])
        b.commit()
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    with database.Session() as session:
        scopes = {(s.race_id, s.version, s.counts) for s in session.scalars(select(CountScopeRow))}
        assert audit(session) == []
    assert scopes == {(1, 3, 4), (3, 2, 4)}
