"""One poll cycle end to end in process: lease, archive, state, claim checks applied."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from rome.feeds.sources_file import SourceSpec
from rome.ops.poller import apply_items, run_cycle
from rome.store import archive as archived
from rome.store import polls
from rome.store.archive import Archive
from rome.store.models import CurrentRow, PollStateRow, RaceStatusRow
from tests.helpers.feeds_http import AP_BASE, FakeClock, ap_answer, ap_race

URL = f"{AP_BASE}?format=json&level=state"
NEXT = [f"{URL}&minDateTime=2024-11-06T03:00:0{i}Z" for i in range(5)]


@pytest.fixture
def db(poll_db):
    return poll_db


def spec(source="live", url=URL, **more):
    return SourceSpec(id=source, format="ap", url=url, interval=5.0, name="Live",
                      requests_per_minute=100, **more)


def current(database, source):
    with database.Session() as session:
        return sorted((r.race_id, r.unit_id, r.candidate_id, r.votes) for r in session.scalars(
            select(CurrentRow).where(CurrentRow.source_id == source)))


def served(answers):
    return httpx.MockTransport(lambda r: httpx.Response(200, content=answers[str(r.url)]))


def poll_and_apply(database, store, source_spec, transport, clock=None, **kw):
    clock = clock or FakeClock()
    cycle = run_cycle(database, store, source_spec, transport=transport, clock=clock,
                      sleep=clock.sleep, env={}, **kw)
    apply_items(database, store, source_spec.id, cycle.outcome.items)
    return cycle


RACES = {"1": ("AZ", {"a": 10, "b": 20}), "2": ("NV", {"c": 5, "d": 6}),
         "3": ("UT", {"e": 1, "f": 2})}


def full(figures, stamp, nextrequest):
    return ap_answer([ap_race(rid, st, figures.get(rid, votes)) for rid, (st, votes)
                      in RACES.items()], stamp, nextrequest)


def test_incremental_answers_merged_equal_one_full_answer(db, tmp_path):
    store = Archive(tmp_path / "archive")
    later = {"2": {"c": 50, "d": 60}}
    # Incremental: a full first answer, then one carrying only the race that changed,
    # then one with no races at all.
    incremental = {
        URL: full({}, "2024-11-06T03:00:00Z", NEXT[0]),
        NEXT[0]: ap_answer([ap_race("2", "NV", later["2"])], "2024-11-06T03:00:05Z", NEXT[1]),
        NEXT[1]: ap_answer([], "2024-11-06T03:00:09Z", NEXT[2]),
    }
    for _ in range(3):
        poll_and_apply(db, store, spec("inc"), served(incremental))
    # Full: one answer at the same moment.
    poll_and_apply(db, store, spec("whole"), served({URL: full(later, "2024-11-06T03:00:05Z",
                                                               NEXT[0])}))
    inc, whole = current(db, "inc"), current(db, "whole")
    assert len(inc) == 6 and [r[3] for r in inc] == [r[3] for r in whole]
    with db.Session() as session:
        statuses = session.scalars(select(RaceStatusRow).where(
            RaceStatusRow.source_id == "inc")).all()
        assert len(statuses) == 3  # races absent from the increment kept theirs


def test_every_body_is_archived_once_and_each_fetch_indexed(db, tmp_path):
    store = Archive(tmp_path / "archive")
    same = ap_answer([ap_race("1", "AZ", {"a": 1})], "2024-11-06T03:00:00Z", URL)
    for _ in range(3):
        poll_and_apply(db, store, spec(), served({URL: same}))
    files = list((tmp_path / "archive").glob("*/*.gz"))
    with db.Session() as session:
        rows = archived.fetches(session, "live")
    assert len(files) == 1 and len(rows) == 3
    assert {r.sha256 for r in rows} == {files[0].name.removesuffix(".gz")}
    assert (rows[0].url, rows[0].status, rows[0].version) == (URL, 200, "2024-11-06T03:00:00Z")
    assert store.read(rows[0].sha256) == same


def test_the_api_key_never_reaches_the_logs(db, tmp_path, caplog):
    secret = "SECRET-ap-key-93f1"
    transport = httpx.MockTransport(
        lambda r: httpx.Response(500 if len(calls) == 1 else 200,
                                 content=b"oops" if not calls.append(1) else b""))
    calls: list = []
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    for _ in range(2):
        run_cycle(db, Archive(tmp_path / "a"), spec(api_key_env="AP_KEY"), transport=transport,
                  clock=clock, sleep=clock.sleep, env={"AP_KEY": secret})
    assert caplog.records and secret not in caplog.text
    with db.Session() as session:
        row = session.get(PollStateRow, "live")
        assert secret not in repr(vars(row))


def test_a_stalled_poll_is_skipped_not_queued_and_other_sources_go_on(db, tmp_path):
    store = Archive(tmp_path / "archive")
    release, entered = threading.Event(), threading.Event()

    def stalled(request):
        entered.set()
        release.wait(10)
        return httpx.Response(200, content=ap_answer([], "2024-11-06T03:00:00Z", URL))

    slow = threading.Thread(target=run_cycle, args=(db, store, spec("slow")),
                            kwargs={"transport": httpx.MockTransport(stalled), "env": {}})
    slow.start()
    try:
        assert entered.wait(10)
        skipped = [run_cycle(db, store, spec("slow"), transport=httpx.MockTransport(stalled),
                             env={}) for _ in range(3)]
        assert all(c.skipped for c in skipped)
        other = poll_and_apply(db, store, spec("fast"), served(
            {URL: ap_answer([ap_race("1", "AZ", {"a": 1})], "2024-11-06T03:00:00Z", URL)}))
        assert not other.skipped and len(other.outcome.items) == 1
    finally:
        release.set()
        slow.join(10)
    with db.Session() as session:
        row = session.get(PollStateRow, "slow")
        assert polls.public_state(row, datetime.now(UTC))["polls"] == {"200": 1, "skipped": 3}
    # The lease is free again: the next poll runs.
    assert not run_cycle(db, store, spec("slow"), transport=httpx.MockTransport(stalled),
                         env={}).skipped


def test_a_lease_left_by_a_killed_poll_expires(db):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with db.Session.begin() as session:
        assert polls.take_lease(session, "live", "dead-worker", now, 30)
    with db.Session.begin() as session:
        assert not polls.take_lease(session, "live", "me", now + timedelta(seconds=29), 30)
        assert polls.take_lease(session, "live", "me", now + timedelta(seconds=31), 30)


def test_visible_state_after_a_failed_poll(db, tmp_path):
    clock = FakeClock()
    run_cycle(db, Archive(tmp_path / "a"), spec(), clock=clock, sleep=clock.sleep, env={},
              transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    with db.Session() as session:
        shown = polls.public_state(session.get(PollStateRow, "live"),
                                   datetime.fromtimestamp(clock() + 2, UTC))
    assert shown["status"] == 503 and "HTTP 503" in shown["last_error"]
    assert shown["requests_last_minute"] == 1 and shown["last_poll_age"] == pytest.approx(2)
    assert shown["next_poll_at"] is not None and shown["polls"] == {"503": 1}


def test_retention_by_age_and_by_size_bounds_the_archive(db, tmp_path):
    store = Archive(tmp_path / "archive")
    old = datetime(2026, 1, 1, tzinfo=UTC)
    with db.Session.begin() as session:
        for i in range(10):
            body = bytes(range(256)) * 40 + str(i).encode()  # ~10 kB, each distinct
            archived.record_fetch(session, store, source="live", fmt="ap", url=URL, status=200,
                                  body=body, fetched_at=(old + timedelta(days=i)).timestamp(),
                                  kind="feed")
    with db.Session.begin() as session:
        assert archived.prune(session, store, days=3, now=old + timedelta(days=9, hours=1)) == 7
    with db.Session() as session:
        assert archived.count(session, "live") == 3
    assert len(list(store.root.glob("*/*.gz"))) == 3
    one = archived.total_size(store) // 3
    with db.Session.begin() as session:
        archived.prune(session, store, max_bytes=2 * one + one // 2)
    assert archived.total_size(store) <= 2 * one + one // 2
    with db.Session() as session:
        kept = archived.fetches(session, "live")
    assert len(kept) == 2 and kept[-1].fetched_at.day == 10


def test_a_poll_the_limit_holds_back_is_counted_limited_not_an_error(db, tmp_path):
    clock = FakeClock()
    tight = SourceSpec(id="live", format="ap", url=URL, interval=5.0, name="Live",
                       requests_per_minute=1)
    answer = ap_answer([], "2024-11-06T03:00:00Z", URL)
    for _ in range(2):
        run_cycle(db, Archive(tmp_path / "a"), tight, clock=clock, sleep=clock.sleep, env={},
                  transport=served({URL: answer}), deadline=10)
        clock.now += 5
    with db.Session() as session:
        shown = polls.public_state(session.get(PollStateRow, "live"),
                                   datetime.fromtimestamp(clock(), UTC))
    assert shown["polls"] == {"200": 1, "limited": 1}
    assert "limit of 1 requests a minute is reached" in shown["last_error"]
