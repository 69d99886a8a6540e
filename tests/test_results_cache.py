"""The in-memory race views: reused while the database is unchanged, rebuilt when it is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from rome.models import TallyRow
from rome.results_cache import ResultsCache
from rome.tally import record_updates, reject_payload, wipeout
from rome.updates import Update

NOW = datetime.now(UTC)


@pytest.fixture
def cache(database):
    with database.Session.begin() as session:
        record_updates(session, [Update("ap", 1, 0, 1, 101, 10, 1.0)])
    cache = ResultsCache()
    cache.get(database, NOW, 60.0)
    return cache


def test_an_unchanged_database_is_served_from_memory(cache, database):
    first = cache.snapshot
    assert cache.get(database, NOW + timedelta(seconds=1), 60.0) is first
    assert first.races[0].total_votes == 10


@pytest.mark.parametrize(
    "change",
    [
        lambda s: record_updates(s, [Update("ap", 2, 0, 1, 102, 0, 1.0)]),  # zero votes
        lambda s: record_updates(s, [Update("sos", 2, 0, 3, 301, 5, 1.0)]),
        lambda s: reject_payload(s, "mc", "{", "body is not JSON"),
        lambda s: wipeout(s),
        lambda s: s.execute(update(TallyRow).values(votes=TallyRow.votes + 1)),
    ],
    ids=["zero-vote update", "new source", "rejected payload", "wipeout", "edited tally"],
)
def test_any_change_to_the_results_rebuilds(cache, database, change):
    first = cache.snapshot
    with database.Session.begin() as session:
        change(session)
    second = cache.get(database, NOW, 60.0)
    assert second is not first and second.version != first.version


def test_a_source_going_stale_rebuilds(cache, database):
    first = cache.snapshot
    later = cache.get(database, NOW + timedelta(hours=1), 60.0)
    assert later is not first
    assert later.races[0].sources[0].stale and not first.races[0].sources[0].stale


def test_another_threshold_rebuilds(cache, database):
    assert cache.get(database, NOW, 30.0) is not cache.get(database, NOW, 60.0)
