"""The whole pipeline with a real worker and a real beat: embedded, then RabbitMQ + PostgreSQL."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from rome.feeds.simulator import stamp
from rome.feeds.snapshot import TOTAL
from rome.settings import load_settings
from rome.store import db
from rome.store.models import RaceStatusRow, SourceRow, TallyRow
from tests.helpers.support import CELERY, migrated_pipeline, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(params=["embedded", "rabbitmq+postgresql"])
def pipeline(request, tmp_path, unique, empty_tables):
    env = {
        "ROME_DATA_DIR": str(tmp_path / "data"),
        "ROME_SOURCE_INTERVAL": "0.25",
        "ROME_UPDATE_CHANCE": "1",
        "ROME_NIGHT_SECONDS": "300",
        "ROME_SEED": unique,
        "ROME_ENV": "development",  # the test broker's login is guest's
    }
    processes = migrated_pipeline(request, env, tmp_path)
    settings = load_settings(env)
    database = db.connect(settings.database_url)
    empty_tables(database)
    with database.Session.begin() as session:  # the simulated night begins now
        session.execute(update(SourceRow).values(started_at=datetime.now(UTC)))
    yield processes, settings, database
    processes.stop()
    database.engine.dispose()


def versions(database) -> dict[str, int]:
    """Return each source's newest applied version."""
    with database.Session() as session:
        out: dict[str, int] = {}
        for s in session.scalars(select(RaceStatusRow)):
            out[s.source_id] = max(out.get(s.source_id, 0), s.version)
        return out


def top_totals(database) -> dict[tuple[int, str, int], int]:
    with database.Session() as session:
        rows = session.scalars(select(TallyRow).where(TallyRow.vote_type == TOTAL))
        tops: dict = {}
        for t in rows:
            key = (t.race_id, t.source_id)
            if key not in tops or t.rank < tops[key][0]:
                tops[key] = (t.rank, {})
            if t.rank == tops[key][0]:
                tops[key][1][t.candidate_id] = t.votes
        return {(r, s, c): v for (r, s), (_, by) in tops.items() for c, v in by.items()}


def test_snapshots_flow_from_every_source_in_its_own_format(pipeline):
    processes, settings, database = pipeline
    processes.worker()
    processes.beat()

    first = wait_for(lambda: (v := versions(database)) and len(v) == 3 and v, 90,
                     what="all three sources to report")
    # AP sends only the races that changed between its full answers (every
    # RESYNC_TICKS ticks, rome/feeds/simulator.py): wait for every race of every source
    # to arrive, not for one more version, which may carry one race only.
    every_race = {(1, "ap"), (1, "sos"), (2, "mc"), (3, "sos"), (3, "ap")}
    wait_for(lambda: {(r, s) for r, s, _ in top_totals(database)} >= every_race
             and all(versions(database)[s] > first[s] for s in first), 60,
             what="every source's races, and newer versions from every source")

    # Quiesce the sources, then publish one snapshot twice: the copy changes nothing.
    processes.stop("beat")
    settle = {}

    def settled():
        now = versions(database), top_totals(database)
        done = settle.get("last") == now
        settle["last"] = now
        return done

    # What beat queued must all be applied first: on a loaded machine that can
    # take a while (up to 36 tasks a second were queued), so allow for it.
    wait_for(settled, 120, interval=1.5, what="the pipeline to drain")
    expect = processes.log_dir / "dup.json"
    start = int(time.time()) + 1  # after every tick beat sent
    injected = processes.run([sys.executable, "-m", "rome", "inject", "--updates", "4",
                              "--batch", "4", "--duplicate-rate", "1", "--start", str(start),
                              "--expect", str(expect)])
    assert injected.returncode == 0, injected.stderr
    assert "published 2 messages" in injected.stdout
    # One AP snapshot, versioned by AP's rule: wait for both of its copies, not for any
    # no-op (a late simulated message delivered out of order is one too).
    version = f"versions=ap@{stamp('ap', start, 1.0)[0]} "

    def both_copies():
        lines = [line for line in processes.log("worker").splitlines()
                 if "event=recorded" in line and version in line]
        return sorted("applied=0 " in line for line in lines) == [False, True]

    wait_for(both_copies, 60, what="the second copy to reach caesar and change nothing")
    expected = json.loads(expect.read_text())["tallies"]
    top = [t for t in expected if t["rank"] == 1]  # ap's state row
    with database.Session() as session:
        stored = {(t.candidate_id, t.rank): t.votes for t in session.scalars(
            select(TallyRow).where(TallyRow.source_id == "ap", TallyRow.race_id == 1))}
    assert {(int(t["candidate"].split(":")[1]), 1): t["votes"] for t in top}.items() <= \
        stored.items()

    processes.stop()
    audit = processes.run([sys.executable, "-m", "rome", "audit"])
    assert audit.returncode == 0, audit.stderr
    assert "audit ok" in audit.stdout


def test_audit_exits_1_on_a_tampered_tally(pipeline):
    processes, settings, database = pipeline
    from rome.store.tally import record_snapshots
    from tests.helpers.builders import race_snapshot

    with database.Session.begin() as session:
        record_snapshots(session, [race_snapshot("mc", 3, {201: 5, 202: 6})])
    with database.Session.begin() as session:
        session.scalars(select(TallyRow)).first().votes += 1
    audit = processes.run([sys.executable, "-m", "rome", "audit"])
    assert audit.returncode == 1
    assert "differences" in audit.stderr and "/mc/" in audit.stderr


def test_replayed_real_files_show_their_own_races(pipeline):
    processes, settings, database = pipeline
    from rome.read.results import original_rows, race_views

    processes.worker()
    fixtures = "tests/fixtures"
    for source, path in (("elex", f"{fixtures}/ap/20121106_ak_prez.json"),
                         ("gasos", f"{fixtures}/clarity/ga_counties_11-3-trim.xml"),
                         ("elexco", f"{fixtures}/ap/20151103_national-co.json")):
        replayed = processes.run([sys.executable, "-m", "rome", "replay", "--source", source,
                                  path])
        assert replayed.returncode == 0, replayed.stderr

    def races():
        with database.Session() as session:
            views = race_views(session)
        found = {(v.name, s.id): v for v in views for s in v.sources if s.votes}
        return found if {"elex", "gasos", "elexco"} <= {s for _, s in found} else None

    found = wait_for(races, 60, what="the replayed races on the page")
    alaska = next(v for (name, source), v in found.items() if source == "elex")
    assert {c.last: c.votes for c in alaska.candidates}["Romney"] == 136848
    assert alaska.winner_id == next(c.id for c in alaska.candidates if c.last == "Romney")
    rows = original_rows(list(found.values()))
    assert {"source": "ELEX", "lastName": "Romney", "voteCount": 136848}.items() <= next(
        r for r in rows if r["lastName"] == "Romney").items()
    # AP's own file disagrees with itself: Colorado's state row for Proposition BB is
    # not the sum of its 64 counties. Both are kept, the state row counts, and it shows.
    flagged = {(d.votes, d.below_votes) for v in found.values() for s in v.sources
               if s.id == "elexco" for d in s.disagreements}
    assert {(805617, 801232), (354769, 351144)} <= flagged
    assert "event=level_disagreement" in processes.log("worker")


def test_a_worker_started_without_Q_consumes_every_work_queue(rome_on_rabbitmq):
    from workers.factory import topology

    processes, database = rome_on_rabbitmq
    processes.start("worker", [*CELERY, "worker", "-n", "everything@%h", "-c", "1", "-l", "info"])

    def active_queues():
        asked = processes.run([*CELERY, "inspect", "active_queues", "--json", "-t", "2"])
        return asked.returncode == 0 and json.loads(asked.stdout)

    [queues] = wait_for(active_queues, 90, interval=1, what="the worker to answer").values()
    settings = load_settings(processes.env)
    assert {q["name"] for q in queues} == {q.name for q in topology(settings).work}
    # And it runs what arrives on them: notekeeper's, then caesar's task.
    injected = processes.run([sys.executable, "-m", "rome", "inject", "--updates", "4"])
    assert injected.returncode == 0, injected.stderr
    wait_for(lambda: top_totals(database), 30, what="caesar to record them")
