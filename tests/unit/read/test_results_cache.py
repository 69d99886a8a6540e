"""The in-memory race views: reused while the database is unchanged, rebuilt when it is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from rome.read.results_cache import MAX_ANSWERS, ResultsCache
from rome.store.models import CurrentRow, TallyRow
from rome.store.tally import record_snapshots, reject_payload, wipeout
from tests.helpers.builders import race_snapshot

NOW = datetime.now(UTC)


@pytest.fixture
def cache(database):
    with database.Session.begin() as session:
        record_snapshots(session, [race_snapshot("ap", 1, {101: 10}, feed_at=1.0)])
    cache = ResultsCache()
    cache.get(database, NOW, 60.0)
    return cache


def test_an_unchanged_database_is_served_from_memory(cache, database):
    first = cache.state
    assert cache.get(database, NOW + timedelta(seconds=1), 60.0) is first
    assert first.races[0].total_votes == 10


@pytest.mark.parametrize(
    "change",
    [
        lambda s: record_snapshots(s, [race_snapshot("ap", 2, {102: 0})]),  # zero votes
        lambda s: record_snapshots(s, [race_snapshot("ap", 2, {101: 10})]),  # same figure
        lambda s: record_snapshots(s, [race_snapshot("ap", 2, {101: 9})]),  # a correction
        lambda s: record_snapshots(s, [race_snapshot("ap", 2, {101: 10}, winner=101)]),
        lambda s: record_snapshots(s, [race_snapshot("sos", 2, {301: 5}, race_id=3)]),
        lambda s: reject_payload(s, "mc", "{", "body is not JSON"),
        lambda s: wipeout(s),
        lambda s: s.execute(update(TallyRow).values(votes=TallyRow.votes + 1)),
    ],
    ids=["zero votes", "newer version, same figure", "correction", "call", "new source",
         "rejected payload", "wipeout", "edited tally"],
)
def test_any_change_to_the_results_rebuilds(cache, database, change):
    first = cache.state
    with database.Session.begin() as session:
        change(session)
    second = cache.get(database, NOW, 60.0)
    assert second is not first and second.version != first.version


def test_an_older_version_changes_nothing_and_rebuilds_nothing(cache, database):
    first = cache.state
    with database.Session.begin() as session:
        record_snapshots(session, [race_snapshot("ap", 0, {101: 99})])  # a replayed old file
    assert cache.get(database, NOW, 60.0) is first


def test_a_source_going_stale_rebuilds(cache, database):
    first = cache.state
    later = cache.get(database, NOW + timedelta(hours=1), 60.0)
    assert later is not first
    assert later.races[0].sources[0].stale and not first.races[0].sources[0].stale


def test_a_live_source_with_a_quiet_race_is_served_from_memory(database):
    # The state reported race 3 an hour ago and race 1 just now: it is live, in
    # both races, and nothing about that changes from one request to the next.
    with database.Session.begin() as session:
        record_snapshots(session, [race_snapshot("sos", 1, {301: 5}, race_id=3),
                                   race_snapshot("sos", 1, {101: 7}, race_id=1)])
        hour = timedelta(hours=1)
        for table in (TallyRow, CurrentRow):
            column = table.last_update_at if table is TallyRow else table.applied_at
            session.execute(update(table).where(table.race_id == 3).values({column: NOW - hour}))
    cache = ResultsCache()
    first = cache.get(database, NOW, 60.0)
    senate = next(race for race in first.races if race.id == 3)
    assert not next(s for s in senate.sources if s.id == "sos").stale
    assert cache.get(database, NOW + timedelta(seconds=1), 60.0) is first


def test_another_threshold_rebuilds(cache, database):
    assert cache.get(database, NOW, 30.0) is not cache.get(database, NOW, 60.0)


# The state filtered reads share (a page, a state, the index): answers kept per version.


def test_filtered_answers_are_kept_while_nothing_changes(cache, database):
    first = cache.listing(database, NOW, 60.0)
    built = []
    assert first.answer("page", lambda: built.append(1) or "answer") == "answer"
    again = cache.listing(database, NOW + timedelta(seconds=1), 60.0)
    assert again is first and again.answer("page", lambda: built.append(1)) == "answer"
    assert built == [1]


def test_filtered_reads_never_build_every_races_views(database):
    cache = ResultsCache()
    cache.listing(database, NOW, 60.0)
    assert cache.state is None


def test_a_change_or_a_source_going_stale_forgets_the_answers(cache, database):
    first = cache.listing(database, NOW, 60.0)
    first.answer("page", lambda: "old")
    with database.Session.begin() as session:
        record_snapshots(session, [race_snapshot("ap", 2, {101: 11})])
    changed = cache.listing(database, NOW, 60.0)
    assert changed is not first and changed.answer("page", lambda: "new") == "new"
    stale = cache.listing(database, NOW + timedelta(hours=1), 60.0)
    assert stale is not changed and stale.stale == {"ap": True}
    assert cache.listing(database, NOW, 30.0) is not cache.listing(database, NOW, 60.0)


def test_the_answers_kept_are_bounded(cache, database):
    state = cache.listing(database, NOW, 60.0)
    for n in range(MAX_ANSWERS + 10):
        state.answer(("page", n), lambda n=n: n)
    assert len(state.memo) <= MAX_ANSWERS
