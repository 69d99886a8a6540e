"""Beat polls ROME_SOURCES (or simulates, without it); notekeeper takes claim checks."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from rome.feeds.sources_file import SourcesError, load_sources
from rome.ops.poller import run_cycle
from rome.settings import load_settings
from rome.store.archive import Archive
from rome.store.models import CurrentRow, RejectedRow
from tests.helpers.feeds_http import (
    ATKINSON,
    BACON,
    STATE_BASE,
    FakeClock,
    election_settings,
    zipped,
)
from workers.factory import create_app

SOURCES = """
[[source]]
id = "ga"
format = "clarity"
url = "https://results.example/GA/105369/"
interval = 7
"""


def test_with_rome_sources_beat_polls_them_on_the_poll_queue_and_simulates_none(tmp_path):
    (tmp_path / "s.toml").write_text(SOURCES)
    settings = load_settings({"ROME_DATA_DIR": str(tmp_path),
                              "ROME_SOURCES": str(tmp_path / "s.toml"),
                              "ROME_ARCHIVE_RETENTION": "7d"})
    schedule = create_app(settings).conf.beat_schedule
    assert sorted(schedule) == ["archive-prune", "poll-ga"]
    entry = schedule["poll-ga"]
    assert entry["task"] == "rome.poll.run" and entry["args"] == ("ga",)
    assert entry["schedule"].total_seconds() == 7
    # Due again before it ran: dropped, not run late behind a stalled endpoint.
    assert entry["options"] == {"queue": "poll", "expires": 7.0}
    plain = create_app(load_settings({"ROME_DATA_DIR": str(tmp_path)})).conf.beat_schedule
    assert sorted(plain) == ["source-ap", "source-mc", "source-sos"]


def test_a_bad_sources_file_stops_the_app_with_its_line(tmp_path):
    (tmp_path / "s.toml").write_text(SOURCES.replace('format = "clarity"', 'format = "xml"'))
    settings = load_settings({"ROME_DATA_DIR": str(tmp_path),
                              "ROME_SOURCES": str(tmp_path / "s.toml")})
    with pytest.raises(SourcesError, match=r"s.toml:4: key 'format'"):
        create_app(settings)


def test_notekeeper_reads_a_claim_check_from_the_archive_scoped_by_county(
        monkeypatch, database, tmp_path):
    from workers import tasks

    (tmp_path / "s.toml").write_text(SOURCES.replace("https://results.example/GA/105369/",
                                                     STATE_BASE))
    spec = load_sources(tmp_path / "s.toml")[0]
    store = Archive(tmp_path / "archive")

    def answer(request):
        path = request.url.path
        if path.endswith("current_ver.txt"):
            return httpx.Response(200, text="5")
        if path.endswith(".json"):
            return httpx.Response(200, content=election_settings(
                {"Atkinson": ("1", "11"), "Bacon": ("2", "22")}))
        return httpx.Response(200, content=zipped(ATKINSON if "Atkinson" in path else BACON))

    clock = FakeClock()
    sent_on = []
    run_cycle(database, store, spec, transport=httpx.MockTransport(answer), clock=clock,
              sleep=clock.sleep, env={}, send=sent_on.extend)
    assert [i.scope for i in sent_on] == ["Atkinson", "Bacon"]
    recorded = []
    monkeypatch.setattr(tasks, "database", lambda: database)
    monkeypatch.setattr(tasks, "archive", lambda: store)
    monkeypatch.setattr(tasks.record, "apply_async", lambda a, **k: recorded.append(a[0]))
    for item in sent_on:
        assert tasks.normalize_feed.apply(args=("ga", str(item.archive_id), "archive")).get() > 0
    [atkinson], [bacon] = recorded
    assert atkinson["version"] == 11 and bacon["version"] == 22
    races = [{r[0] for r in wire["races"]} for wire in (atkinson, bacon)]
    assert races[0] and not races[0] & races[1]
    assert all(key.startswith("atkinson/") for key in races[0])
    # A claim check naming both, as the poll task sends a cycle's files: one message to
    # caesar with both snapshots, and a reference among them that names nothing archived
    # rejected alone, with its reason.
    recorded.clear()
    claim = f"{sent_on[0].archive_id},999998,{sent_on[1].archive_id}"
    counts = len(atkinson["counts"]) + len(bacon["counts"])
    assert tasks.normalize_feed.apply(args=("ga", claim, "archive")).get() == counts
    assert recorded == [[atkinson, bacon]]
    with database.Session() as session:
        [missing] = session.scalars(select(RejectedRow)).all()
        assert "no archived fetch 999998" in missing.reason and missing.payload == "999998"
        session.delete(missing)
        session.commit()
    # More references than a claim check may name: refused whole, before any is read.
    too_many = ",".join([str(sent_on[0].archive_id)] * 17)
    assert tasks.normalize_feed.apply(args=("ga", too_many, "archive")).get() == 0
    with database.Session() as session:
        [refused] = session.scalars(select(RejectedRow)).all()
        assert "at most 16 fetches, this one 17" in refused.reason
        session.delete(refused)
        session.commit()
    # A claim check naming nothing archived is rejected with its reason, not a crash.
    assert tasks.normalize_feed.apply(args=("ga", "999999", "archive")).get() == 0
    assert tasks.normalize_feed.apply(args=("ap", str(sent_on[0].archive_id),
                                            "archive")).get() == 0
    with database.Session() as session:
        reasons = [r.reason for r in session.scalars(select(RejectedRow))]
        assert session.scalars(select(CurrentRow)).first() is None
    assert "no archived fetch 999999" in reasons[0] and "is of source 'ga'" in reasons[1]


def test_a_cycles_fetches_go_sixteen_to_a_claim_check():
    from rome.store.archive import claim_checks, claimed_ids

    claims = claim_checks(list(range(1, 160)))  # a state's 159 county files
    assert len(claims) == 10 and claims[0] == ",".join(map(str, range(1, 17)))
    assert [int(i) for claim in claims for i in claimed_ids(claim)] == list(range(1, 160))
    assert claim_checks([]) == [] and claim_checks([7]) == ["7"]
