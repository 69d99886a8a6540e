"""Staleness of sources, on its own and as race_views reports it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rome.read.freshness import STALE_INTERVALS, age_seconds, is_stale, stale_after, stale_reason
from rome.read.results import heard_by_source, race_views, rejected_by_source
from rome.store.tally import record_snapshots, reject_payload
from tests.helpers.builders import race_snapshot

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
        record_snapshots(session, [
            race_snapshot("ap", 1, {101: 10}, feed_at=1.0),
            race_snapshot("mc", 1, {201: 20}, feed_at=1.0),
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
    ap, mc = (races[i].sources[0] for i in (1, 2))
    (sos,) = [s for s in races[3].sources if s.id == "sos"]
    assert ap.stale and mc.stale and not sos.stale  # sos never reported: waiting
    assert not fresh[1].sources[0].stale
    assert (ap.rejected, mc.rejected, sos.rejected) == (0, 2, 0)
    race = races[2].to_json()
    assert race["sources"][0] == {
        "id": "mc",
        "name": "Maricopa County Recorder",
        "code": "MC",
        "votes": 20,
        "level": "county",
        "changes": 1,
        "corrections": 0,
        "version": 1,
        "feed_at": "1970-01-01T00:00:01+00:00",
        "last_update_at": race["last_update_at"],
        "heard_at": race["last_update_at"],
        "stale": True,
        "stale_after_seconds": 10.0,
        "stale_reason": f"No report since {datetime.fromisoformat(race['last_update_at']):%H:%M:%S}"
                        " UTC; a source is stale after 10 s without one.",
        "rejected": 2,
        "units_reporting": 1,
        "units_total": 1,
        "units_level": "county",
        "precincts_reporting": None,
        "precincts_total": None,
        "winner": None,
        "test": False,
        "level_disagreements": [],
    }


def test_a_source_is_live_in_every_race_while_it_reports_in_one(database):
    # AP's answers leave out the races that did not change: its quiet race is not stale.
    with database.Session.begin() as session:
        record_snapshots(session, [race_snapshot("sos", 1, {301: 5}, race_id=3)],
                         applied_at=NOW - timedelta(hours=1))
        record_snapshots(session, [race_snapshot("sos", 1, {101: 7}, race_id=1)],
                         applied_at=NOW)
    with database.Session() as session:
        races = {race.id: race for race in race_views(session, now=NOW, stale_after=10.0)}
        later = {race.id: race for race in race_views(session, now=NOW + timedelta(seconds=11),
                                                      stale_after=10.0)}
    (senate,) = [s for s in races[3].sources if s.id == "sos"]
    assert not senate.stale and senate.heard_at == NOW
    assert senate.last_update_at == NOW - timedelta(hours=1)  # its own race's last change
    assert all(s.stale for race in later.values() for s in race.sources if s.id == "sos")
    # Stale in its quiet race too, for the silence since its last report anywhere.
    (quiet,) = [s for s in later[3].sources if s.id == "sos"]
    assert quiet.stale_reason == (
        f"No report since {NOW:%H:%M:%S} UTC; a source is stale after 10 s without one.")
    assert senate.stale_reason is None


def test_the_stale_reason_says_since_when_and_how_long_is_too_long():
    assert stale_reason(NOW - timedelta(seconds=45), 40.0) == (
        "No report since 19:59:15 UTC; a source is stale after 40 s without one.")
    assert stale_reason(datetime(2016, 11, 8, 19, 59, 30), 1.5).endswith("after 1.5 s without one.")


def test_a_report_with_no_figure_changed_is_heard_all_the_same(database):
    """A newer version with the same figures writes no count and no tally (count scopes,
    digests): the source still reported, and is live, not stale."""
    with database.Session.begin() as session:
        record_snapshots(session, [race_snapshot("ap", 1, {101: 10}, feed_at=1.0)],
                         applied_at=NOW - timedelta(hours=1))
    with database.Session.begin() as session:
        again = record_snapshots(session, [race_snapshot("ap", 2, {101: 10}, feed_at=2.0)],
                                 applied_at=NOW)
        assert again.changed == 0
    with database.Session() as session:
        race = race_views(session, now=NOW + timedelta(seconds=5), stale_after=10.0)[0]
        (ap,) = [s for s in race.sources if s.id == "ap"]
        assert ap.heard_at == NOW and not ap.stale
        assert ap.last_update_at == NOW - timedelta(hours=1)  # its figures last changed then
        assert heard_by_source(session) == {"ap": NOW}
