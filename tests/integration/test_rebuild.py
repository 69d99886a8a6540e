"""A database lost mid-night is rebuilt from the archive alone: `rome db upgrade` + `rome replay
--archive --all`, on RabbitMQ and PostgreSQL, and the rebuilt state equals the lost one."""

from __future__ import annotations

import json
import shutil
import sys
import time

import pytest
from sqlalchemy import create_engine, func, select, text

from rome.feeds.feedserver import FeedServer
from rome.store import db, journal
from rome.store.audit import audit, tallies_by_key
from rome.store.models import ArchiveRow, HistoryRow
from tests.helpers.paths import FIXTURES
from tests.helpers.support import Processes, reset_queues, wait_for
from tests.helpers.webapp import dispose, make_app

pytestmark = pytest.mark.slow
ROME = [sys.executable, "-m", "rome"]


def _admin(url: str):
    base, _, name = db.driver_url(url).rpartition("/")
    return create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT"), name


def recreate_database(url: str) -> None:
    """Drop the database (whoever is connected) and make an empty one of the same name."""
    admin, name = _admin(url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


@pytest.fixture
def night(tmp_path, pg_url, amqp_url):
    """A feed server (the simulated night and two recorded files), polled by a real pipeline
    on RabbitMQ and a PostgreSQL database of this test's own."""
    url = pg_url + "_rebuild"
    recreate_database(url)
    server = FeedServer(simulated=True, interval=1.0, seed="rebuild",
                        ap=[FIXTURES / "ap" / "20151103_national-co.json"],
                        nist=[FIXTURES / "nist" / "atkinson-2020-general.json"])
    server.start()
    (tmp_path / "sources.toml").write_text(server.sources_toml(interval=1.0))
    reset_queues(amqp_url)
    env = {"ROME_DATA_DIR": str(tmp_path / "data"), "ROME_SOURCES": str(tmp_path / "sources.toml"),
           "ROME_DATABASE_URL": url, "ROME_BROKER_URL": amqp_url, "ROME_ENV": "development"}
    processes = Processes(env, tmp_path)
    upgraded = processes.run([*ROME, "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    yield server, processes, url, tmp_path
    processes.stop()
    server.stop()


def full_state(url: str, root) -> dict:
    """Every race as /api/races shows it (ids, which a rebuild may number otherwise, replaced
    by names; when things were applied left out), every tally, and the audit."""
    app = make_app(url, root / "app")
    try:
        races = app.test_client().get("/api/races").get_json()
    finally:
        dispose(app)
    state, changed = {}, {}
    for race in races["races"]:
        names = {c["id"]: f'{c["first"]} {c["last"]} ({c["party"]})' for c in race["candidates"]}
        for candidate in race["candidates"]:
            candidate["id"] = names[candidate["id"]]
        for key in ("leader", "winner"):
            race[key] = names.get(race[key], race[key])
        for source in race["sources"]:
            source["winner"] = names.get(source["winner"], source["winner"])
            for d in source["level_disagreements"]:
                d["candidate_id"] = names.get(d["candidate_id"], d["candidate_id"])
            for moment in ("last_update_at", "heard_at", "stale", "stale_reason"):
                source.pop(moment)
            # How many changes (and corrections) were applied depends on the order versions
            # reached the database, not on the figures: a version applied after a newer one
            # changes nothing (live polls and the replay's claim checks both go through
            # three processes at once). Kept apart: whether a source has any change.
            source.pop("corrections")
            changed[f'{race["state"]}/{race["office"]}/{race["name"]}/{source["id"]}'] = (
                source.pop("changes") > 0)
        race.pop("last_update_at")
        race.pop("id")
        state[f'{race["state"]}/{race["office"]}/{race["name"]}'] = race
    database = db.connect(url)
    try:
        with database.Session.begin() as session:
            problems = [str(d) for d in audit(session)]
            tallies = {"/".join(map(str, k)): v for k, v in tallies_by_key(session).items()}
    finally:
        database.engine.dispose()
    return {"races": state, "rejected": races["rejected"], "tallies": tallies,
            "audit": problems, "changed": changed}


def counts(url: str) -> tuple[int, int]:
    database = db.connect(url)
    try:
        with database.Session() as session:
            return (session.scalar(select(func.count()).select_from(ArchiveRow)),
                    session.scalar(select(func.count()).select_from(HistoryRow)))
    finally:
        database.engine.dispose()


def settled(url: str, root, quiet: float = 4.0) -> dict:
    """The full state once the pipeline stopped changing it (the queues drained)."""
    last = None
    for _ in range(60):
        now = (counts(url), full_state(url, root))
        if now == last:
            return now[1]
        last = now
        time.sleep(quiet)
    raise AssertionError("the state never settled")


def test_a_database_lost_mid_night_is_rebuilt_from_the_archive_race_for_race(night):
    server, processes, url, root = night
    processes.worker(queues="poll,notekeeper,caesar", concurrency=3)
    processes.beat()
    sources = [feed["id"] for feed in server.feeds()]

    def fetched(least: int, total: int = 0):
        database = db.connect(url)
        try:
            with database.Session() as session:
                by = dict(session.execute(select(ArchiveRow.source_id, func.count())
                                          .where(ArchiveRow.kind.in_(("feed", "zip")))
                                          .group_by(ArchiveRow.source_id)).all())
        finally:
            database.engine.dispose()
        return all(by.get(s, 0) >= least for s in sources) and sum(by.values()) >= total

    wait_for(lambda: fetched(1), 120, interval=1, what="a feed body from every source")
    for _ in range(3):  # the recorded feeds move on to their other versions
        time.sleep(6)  # AP's polls are limited to 12 a minute
        server.advance()
    wait_for(lambda: fetched(2, 30), 240, interval=1,
             what="two feed bodies fetched from every source, 30 in all")
    processes.stop("beat")  # mid-night: the simulated night goes on, unpolled
    lost = settled(url, root)
    assert lost["audit"] == [] and len(lost["races"]) >= 3 and lost["tallies"]
    indexed, _ = counts(url)
    processes.stop("worker")

    recreate_database(url)  # the database is lost
    upgraded = processes.run([*ROME, "db", "upgrade"])
    assert upgraded.returncode == 0, upgraded.stderr
    assert counts(url) == (0, 0)
    archive = root / "data" / "archive"
    # Without its journal the archive cannot rebuild: a clear error, nothing half done.
    shutil.move(archive / "journal", root / "journal-aside")
    refused = processes.run([*ROME, "replay", "--archive", "--all"])
    assert refused.returncode == 1
    assert "holds bodies but no journal" in refused.stderr
    assert counts(url) == (0, 0)
    shutil.move(root / "journal-aside", archive / "journal")
    # A crash in the middle of a journal write leaves a torn last line: left out, said.
    torn = journal.journal_path(archive, sources[0])
    with open(torn, "ab") as f:
        f.write(b'{"sha256": "0123')

    processes.worker(queues="poll,notekeeper,caesar", concurrency=3)
    replayed = processes.run([*ROME, "replay", "--archive", "--all"], timeout=300)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "torn last line" in replayed.stderr
    assert "archived fetches of" in replayed.stdout
    rebuilt = settled(url, root)
    assert counts(url)[0] == indexed  # every fetch indexed again, none twice
    was, now = flat(lost), flat(rebuilt)
    differing = {k: (was.get(k), now.get(k)) for k in sorted(set(was) | set(now))
                 if was.get(k) != now.get(k)}
    assert not differing, (f"{len(differing)} of {len(was)} figures differ after the rebuild: "
                           + json.dumps(differing, default=str)[:3000])
    assert rebuilt == lost and rebuilt["audit"] == []


def flat(value, path: str = "") -> dict[str, object]:
    """Every leaf of a JSON value by its path (list items by position, sources by id)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(flat(item, f"{path}/{key}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            name = item.get("id", i) if isinstance(item, dict) else i
            out.update(flat(item, f"{path}[{name}]"))
        return out or {path: []}
    return {path: value}
