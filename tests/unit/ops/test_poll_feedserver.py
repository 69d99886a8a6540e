"""Rome's pollers against the feed server (rome feedserver): recorded fixtures polled to the
end give what replaying the files gives; each provider's rules hold over real HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from rome.feeds.feedserver import FeedServer
from rome.feeds.formats import parse_feed
from rome.feeds.poll.clarity import scoped
from rome.feeds.sources_file import parse_sources
from rome.ops.poller import apply_items, run_cycle
from rome.store import polls
from rome.store.archive import Archive
from rome.store.models import (
    CandidateRow,
    CurrentRow,
    PollStateRow,
    RaceRow,
    UnitRow,
)
from rome.store.tally import record_snapshots
from tests.helpers.paths import FIXTURES

AP_CO = FIXTURES / "ap" / "20151103_national-co.json"
COUNTIES = [FIXTURES / "clarity" / name for name in (
    "ga_counties_11-3-trim.xml", "ga_atkinson_precincts_11-3-trim.xml",
    "ga_bacon_precincts_11-3-trim.xml")]
NIST = FIXTURES / "nist" / "atkinson-2020-general.json"


@pytest.fixture
def db(poll_db):
    return poll_db


def specs(server, **more):
    return {s.format: s for s in parse_sources(server.sources_toml(interval=5, **more))}


def poll(database, store, spec, env=None, **kw):
    cycle = run_cycle(database, store, spec, env=env or {},
                      send=lambda items: apply_items(database, store, spec.id, items), **kw)
    assert not cycle.skipped
    return cycle.outcome


def current(database, source):
    """Every current count of source by its feed keys (Rome's source prefix taken off)."""
    cut = len(source) + 1
    with database.Session() as session:
        rows = session.execute(
            select(RaceRow.key, UnitRow.key, CandidateRow.key, CurrentRow.vote_type,
                   CurrentRow.votes)
            .join(RaceRow, RaceRow.id == CurrentRow.race_id)
            .join(UnitRow, UnitRow.id == CurrentRow.unit_id)
            .join(CandidateRow, CandidateRow.id == CurrentRow.candidate_id)
            .where(CurrentRow.source_id == source))
        return sorted((r[cut:], u[cut:], c[cut:].rsplit(":", 1)[1], t, v)
                      for r, u, c, t, v in rows)


def replayed(database, source, *snapshots):
    with database.Session.begin() as session:
        record_snapshots(session, list(snapshots))
    return current(database, source)


def test_ap_polled_to_the_end_of_its_night_equals_replaying_the_file(db, tmp_path):
    store = Archive(tmp_path / "archive")
    with FeedServer(ap=[AP_CO], steps=4, page_size=2, api_key="fs-key") as server:
        spec = specs(server, api_key_env="FS_KEY")["ap"]
        env = {"FS_KEY": "fs-key"}
        expected_targets = []
        for step in range(4):
            with db.Session() as session:
                asked = polls.load_state(session, spec.id).next_url or spec.url
            seen = len(server.requests)
            outcome = poll(db, store, spec, env)
            assert outcome.error is None, outcome.error
            # The first request of each poll is the stored nextrequest, exactly as given;
            # each truncated page's nextrequest followed at once (4 races, 2 a page).
            expected_targets.append((seen, asked))
            if step < 3:
                server.advance()
        once_more = poll(db, store, spec, env)
        assert once_more.items == []  # nothing changed since: nothing sent on
        requests = server.requests
        for index, url in expected_targets:
            assert server.base_url + requests[index].target == url
        assert all(r.header("x-api-key") == "fs-key" for r in requests)
        assert any("offset" in r.target for r in requests)  # truncated pages were followed
    want = replayed(db, "replayed", parse_feed("ap", AP_CO.read_bytes(), source="replayed",
                                                max_ahead=None))
    assert want and current(db, spec.id) == want


def test_clarity_state_fetches_only_moved_counties_and_a_county_404_waits_for_the_next_poll(
        db, tmp_path):
    store = Archive(tmp_path / "archive")
    with FeedServer(clarity=COUNTIES, steps=4) as server:
        spec = specs(server)["clarity"]
        server.fault("404", "/clarity/GA/Atkinson/")
        first = poll(db, store, spec)
        with db.Session() as session:
            shown = polls.public_state(session.get(PollStateRow, spec.id), datetime.now(UTC))
        assert "Atkinson" in shown["county_errors"] and "HTTP 404" in first.error
        assert [i.scope for i in first.items] == ["Bacon"]  # Bacon carried on
        for _ in range(3):
            server.advance()
            assert poll(db, store, spec).error is None
        assert poll(db, store, spec).items == []  # no version moved: nothing fetched
        zips = [r.path for r in server.requests if r.path.endswith(".zip")]
    atkinson = [p for p in zips if "/Atkinson/" in p]
    bacon = [p for p in zips if "/Bacon/" in p]
    # Bacon's one version, once. Atkinson: its first version (the 404), then, as it kept
    # moving, each newer version once: a retry asks the county's version as the list says now.
    assert len(bacon) == 1 and len(atkinson) == len(set(atkinson)) == 4
    snapshots = []
    for path in COUNTIES[1:]:
        county = "Atkinson" if "atkinson" in path.name else "Bacon"
        snapshots.append(scoped(parse_feed("clarity", path.read_bytes(), source="replayed",
                                           version=1), county))
    want = replayed(db, "replayed", *snapshots)
    assert want and current(db, spec.id) == want


def test_nist_polled_twice_costs_one_304_and_equals_the_file(db, tmp_path):
    store = Archive(tmp_path / "archive")
    with FeedServer(nist=[NIST], steps=1) as server:
        spec = specs(server)["nist"]
        assert len(poll(db, store, spec).items) == 1
        again = poll(db, store, spec)
        assert again.status == 304 and again.items == []
        assert server.requests[-1].header("If-None-Match")
    want = replayed(db, "replayed", parse_feed("nist", NIST.read_bytes(), source="replayed",
                                               max_ahead=None))
    assert want and current(db, spec.id) == want


def test_ap_quota_403s_are_waited_out_and_the_limit_never_exceeded(db, tmp_path):
    now = [1_780_000_000.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    store = Archive(tmp_path / "archive")
    with FeedServer(ap=[AP_CO], steps=2, requests_per_minute=3,
                    clock=lambda: now[0]) as server:
        spec = specs(server)["ap"]
        faster = replace(spec, requests_per_minute=4)
        server.fault("quota", "/ap/")
        outcome = poll(db, store, faster, clock=lambda: now[0], sleep=sleep, deadline=100)
        assert outcome.error is None and outcome.items
        assert any(5.0 <= s <= 10.0 for s in slept)  # the quota answer, waited out
        targets = [r.target for r in server.requests]
        assert targets[0] == targets[1]  # the same URL again after the 403
        for _ in range(5):
            server.advance()
            poll(db, store, faster, clock=lambda: now[0], sleep=sleep, deadline=100)
            now[0] += 5
        times = [r.time for r in server.requests]
    for t in times:
        assert sum(1 for u in times if t <= u < t + 60.0) <= 4
