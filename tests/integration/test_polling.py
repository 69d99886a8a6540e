"""Beat polls a live AP endpoint (a loopback server) through a real worker: claim checks
through the broker, bodies from the archive, the state equal to the feed's."""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from rome.feeds.formats import parse_feed
from rome.settings import load_settings
from rome.store import db
from rome.store.models import ArchiveRow, CurrentRow, HistoryRow, PollStateRow, RejectedRow
from rome.store.tally import wipeout
from tests.helpers.feeds_http import LoopbackServer, ap_answer, ap_race
from tests.helpers.support import migrated_pipeline, wait_for

pytestmark = pytest.mark.slow
PATH = "/v2/elections/2024-11-05?format=json&level=state"


class Feed:
    """AP's answers: a full one first, then each request one race moved (incremental)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.votes = {"1": {"a": 100, "b": 200}, "2": {"c": 5, "d": 6}}
        self.states = {"1": "AZ", "2": "NV"}
        self.server = LoopbackServer([], self.answer)

    def answer(self, path: str) -> bytes:
        with self.lock:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            nextrequest = f"{self.server.base}{PATH}&minDateTime={stamp}"
            if "minDateTime" not in path:
                races = list(self.votes)
            else:
                self.votes["1"]["a"] += 7
                races = ["1"]
            return ap_answer([ap_race(r, self.states[r], dict(self.votes[r])) for r in races],
                             stamp, nextrequest)

    def full(self) -> bytes:
        with self.lock:
            return ap_answer([ap_race(r, self.states[r], dict(v)) for r, v in
                              self.votes.items()], "2024-11-06T03:00:00Z", None)


@pytest.fixture(params=["embedded", "rabbitmq+postgresql"])
def polling(request, tmp_path, empty_tables):
    feed = Feed()
    (tmp_path / "sources.toml").write_text(
        f'[[source]]\nid = "live"\nformat = "ap"\nurl = "{feed.server.base}{PATH}"\n'
        'interval = 1\nrequests_per_minute = 600\napi_key_env = "AP_KEY"\n')
    env = {"ROME_DATA_DIR": str(tmp_path / "data"), "ROME_SOURCES": str(tmp_path / "sources.toml"),
           "AP_KEY": "integration-secret-key",
           "ROME_ENV": "development"}  # the test broker's login is guest's
    processes = migrated_pipeline(request, env, tmp_path)
    database = db.connect(load_settings(env).database_url)
    empty_tables(database)
    with database.Session.begin() as session:
        session.query(ArchiveRow).delete()
        session.query(PollStateRow).delete()
    yield feed, processes, database
    processes.stop()
    feed.server.close()
    database.engine.dispose()


def test_beat_polls_and_the_pipeline_ends_in_the_feeds_state(polling):
    feed, processes, database = polling
    processes.worker(queues="poll,notekeeper,caesar", concurrency=3)
    processes.beat()

    def applied_versions():
        with database.Session() as session:
            return session.scalar(select(func.count(func.distinct(HistoryRow.version))).where(
                HistoryRow.source_id == "live"))

    wait_for(lambda: applied_versions() >= 15, 120, what="15 polled versions applied")
    processes.stop("beat")
    want = wait_for_full_answer(database, feed)
    with database.Session() as session:
        fetched = session.scalars(select(ArchiveRow).where(
            ArchiveRow.source_id == "live", ArchiveRow.kind == "feed")).all()
        rejected = session.scalars(select(RejectedRow)).all()
        first_applied = dict(session.execute(
            select(HistoryRow.version, func.min(HistoryRow.applied_at))
            .where(HistoryRow.source_id == "live").group_by(HistoryRow.version)).all())
    assert rejected == []
    # Every request after the first was the last answer's nextrequest, verbatim.
    paths = [p for p, _ in feed.server.seen]
    assert "minDateTime" not in paths[0] and all("minDateTime" in p for p in paths[1:])
    assert all(h.get("x-api-key") == "integration-secret-key" for _, h in feed.server.seen)
    for name in ("worker", "beat"):
        assert "integration-secret-key" not in processes.log(name)
    # Poll to visible: from the fetch to the first commit of that answer's counts.
    latency = []
    for row in fetched:
        stamp = datetime.strptime(row.version, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        version = int(stamp.timestamp() * 1_000_000)
        applied = first_applied.get(version)
        if applied is not None:
            applied = applied if applied.tzinfo else applied.replace(tzinfo=UTC)
            fetched_at = row.fetched_at if row.fetched_at.tzinfo else \
                row.fetched_at.replace(tzinfo=UTC)
            latency.append((applied - fetched_at).total_seconds())
    assert len(latency) >= 15
    latency.sort()
    print(f"\npoll-to-visible over {len(latency)} answers: p50 "
          f"{statistics.median(latency) * 1000:.0f} ms, max {latency[-1] * 1000:.0f} ms")
    # The archive alone rebuilds the state: wipe the results, replay what was fetched.
    with database.Session.begin() as session:
        wipeout(session)
    assert live_votes(database) == []
    replayed = processes.run([sys.executable, "-m", "rome", "replay", "--archive", "--source",
                              "live"], timeout=120)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"published {len(fetched)} of {len(fetched)} archived fetches" in replayed.stdout
    wait_for(lambda: live_votes(database) == want, 60,
             what="the replayed archive to rebuild the same counts")


@pytest.mark.parametrize("polling", ["rabbitmq+postgresql"], indirect=True)
def test_a_worker_killed_mid_poll_loses_nothing_and_counts_nothing_twice(polling):
    feed, processes, database = polling
    worker = processes.worker(queues="poll,notekeeper,caesar", concurrency=3)
    processes.beat()

    def applied_versions():
        with database.Session() as session:
            return session.scalar(select(func.count(func.distinct(HistoryRow.version))).where(
                HistoryRow.source_id == "live"))

    wait_for(lambda: applied_versions() >= 3, 120, what="3 polled versions applied")
    # Every answer now stalls: wait for a poll to be in one, then kill -9 its worker.
    feed.server.stall = 60.0
    asked = len(feed.server.seen)
    wait_for(lambda: len(feed.server.seen) > asked, 30, what="a poll waiting on the endpoint")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    feed.server.stall = 0.0
    before = applied_versions()
    processes.worker(name="worker2", queues="poll,notekeeper,caesar", concurrency=3)
    # The dead poll's lease runs out by itself; polls then go on from the stored nextrequest.
    wait_for(lambda: applied_versions() >= before + 3, 120, what="polls after the restart")
    processes.stop("beat")
    wait_for_full_answer(database, feed)
    audit = processes.run([sys.executable, "-m", "rome", "audit"])
    assert audit.returncode == 0, audit.stdout + audit.stderr
    with database.Session() as session:
        state = session.get(PollStateRow, "live")
        assert json.loads(state.polls).get("skipped", 0) >= 1  # the dead poll's lease held

def live_votes(database) -> list[int]:
    """The live source's current counts, sorted."""
    with database.Session() as session:
        return sorted(r.votes for r in session.scalars(
            select(CurrentRow).where(CurrentRow.source_id == "live")))


def wait_for_full_answer(database, feed, what: str = "the current counts to equal one full "
                         "answer's") -> list[int]:
    """Wait until the live source's counts equal one full answer of the feed now; return them."""
    want = sorted(n.votes for n in parse_feed("ap", feed.full(), source="live",
                                              max_ahead=None).counts)
    wait_for(lambda: live_votes(database) == want, 60, what=what)
    return want
