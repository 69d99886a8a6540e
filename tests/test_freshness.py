"""Staleness of sources, on its own and as race_views reports it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rome.freshness import STALE_INTERVALS, age_seconds, is_stale, stale_after
from rome.results import race_views, rejected_by_source
from rome.tally import record_updates, reject_payload
from rome.updates import Update

NOW = datetime(2016, 11, 8, 20, 0, 0, tzinfo=UTC)


def test_stale_after_is_five_intervals():
    assert STALE_INTERVALS == 5
    assert stale_after(2.0) == 10.0
    # The demo's sources report on 3 ticks in 10: 20 silent ticks happen to a
    # healthy one with probability 0.7**20 < 0.001.
    assert stale_after(2.0, 0.3) == 40.0
    assert 0.7**19 > 0.001 > 0.7**20
    assert stale_after(2.0, 0.9) == 10.0


def test_a_source_is_stale_only_after_the_threshold():
    assert not is_stale(NOW - timedelta(seconds=10), NOW, 10.0)
    assert is_stale(NOW - timedelta(seconds=10.5), NOW, 10.0)


def test_a_source_that_never_reported_is_waiting_not_stale():
    assert not is_stale(None, NOW, 10.0)
    assert age_seconds(None, NOW) is None


def test_no_threshold_means_never_stale():
    assert not is_stale(NOW - timedelta(days=3), NOW, None)


def test_naive_times_are_utc_and_ages_never_negative():
    naive = datetime(2016, 11, 8, 19, 59, 30)
    assert age_seconds(naive, NOW) == 30.0
    # A writer whose clock runs ahead must not make a source younger than new.
    assert age_seconds(NOW + timedelta(seconds=3), NOW) == 0.0


def test_race_views_mark_stale_sources_and_count_their_rejects(database):
    with database.Session.begin() as session:
        record_updates(session, [
            Update("ap", 1, 0, 1, 101, 10, 1.0),
            Update("mc", 1, 0, 2, 201, 20, 1.0),
        ])
        reject_payload(session, "mc", "{", "body is not JSON")
        reject_payload(session, "mc", "[]", "no rows")
        reject_payload(session, "cnn", "{}", "unknown source")
        reject_payload(session, None, b"\xff", "undecodable message")
    with database.Session() as session:
        applied = race_views(session)[0].sources[0].last_update_at
        later = applied.replace(tzinfo=UTC) + timedelta(seconds=11)
        races = {race.id: race for race in race_views(session, now=later, stale_after=10.0)}
        fresh = {race.id: race for race in race_views(session, now=later, stale_after=60.0)}
        assert rejected_by_source(session) == {"mc": 2, "cnn": 1, None: 1}
    ap, mc, sos = (races[i].sources[0] for i in (1, 2, 3))
    assert ap.stale and mc.stale and not sos.stale  # sos never reported: waiting
    assert not fresh[1].sources[0].stale
    assert (ap.rejected, mc.rejected, sos.rejected) == (0, 2, 0)
    assert races[2].to_json()["sources"][0] == {
        "id": "mc",
        "name": "Maricopa County Recorder",
        "votes": 20,
        "updates": 1,
        "last_update_at": races[2].to_json()["last_update_at"],
        "stale": True,
        "stale_after_seconds": 10.0,
        "rejected": 2,
    }
