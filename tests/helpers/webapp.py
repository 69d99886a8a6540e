"""Build the web app over a small, known set of results, for the web tests."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask import Flask

from rome.feeds.snapshot import Snapshot
from rome.store import db, tally
from tests.helpers.builders import race_snapshot
from tests.helpers.template_db import prepared_copy, sqlite_path
from web import create_app

TOKEN = "s3cret-admin-token"
VOTES = {101: 480, 102: 513, 103: 33, 104: 12, 201: 200, 202: 250, 301: 300, 302: 300}
SOURCE_OF_RACE = {1: "ap", 2: "mc", 3: "sos"}

# Later in the night (night()): AP's version 2 of race 1 lowers Trump's 480 (a
# correction), calls the race for Clinton, says how many precincts report and
# splits the votes by type; its counties add up to 590 for Clinton, not its
# state figure of 600. The Secretary of State reports race 1 too, with 590.
AP_V2 = {101: 470, 102: 600, 103: 40, 104: 12}
COUNTIES = {
    "Maricopa": {101: 300, 102: 400, 103: 25, 104: 8},
    "Pima": {101: 170, 102: 190, 103: 15, 104: 4},
    "Yuma": {101: 0, 102: 0, 103: 0, 104: 0},  # listed, not reporting yet
}
VOTE_TYPES = {
    "early": {101: 400, 102: 500, 103: 30, 104: 10},
    "election_day": {101: 70, 102: 100, 103: 10, 104: 2},
}
PRECINCTS = (1200, 1500)
SOS_RACE_1 = {101: 470, 102: 590, 103: 40, 104: 12}
NIGHT_AT = 1478665800.0  # the feeds' own time of those reports: 2016-11-09T04:30:00Z


def seed(url: str) -> None:
    """Migrate the database at url and record VOTES and two rejected payloads in it."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        prepared_copy(path)  # what db.prepare makes, without running the migrations again
    database = db.prepare(url)
    now = time.time()
    snapshots = [
        race_snapshot(source, 1, {cid: v for cid, v in VOTES.items() if cid // 100 == race},
                      race_id=race, feed_at=now)
        for race, source in SOURCE_OF_RACE.items()
    ]
    with database.Session.begin() as session:
        tally.record_snapshots(session, snapshots)
        tally.reject_payload(session, "mc", b"<html>not json", "body is not JSON")
        tally.reject_payload(session, "ap", "{}", "races missing")
    database.engine.dispose()


def night(feed_at: float = NIGHT_AT) -> list[Snapshot]:
    """Return the later reports described at AP_V2, and Maricopa's figures again, as test data."""
    return [
        race_snapshot("ap", 2, AP_V2, below=COUNTIES, vote_types=VOTE_TYPES,
                      precincts=PRECINCTS, winner=102, feed_at=feed_at),
        race_snapshot("sos", 2, SOS_RACE_1, race_id=1, feed_at=feed_at),
        race_snapshot("mc", 2, {201: 200, 202: 250}, test=True, feed_at=feed_at),
    ]


def record(url: str, *snapshots: Snapshot) -> None:
    """Record snapshots into the database at url, as caesar does."""
    database = db.connect(url)
    with database.Session.begin() as session:
        tally.record_snapshots(session, list(snapshots))
    database.engine.dispose()


def broker_folders(root: Path) -> dict[str, str]:
    """Create the embedded broker's folders under root, as the app's transport options."""
    folders = {
        "data_folder_in": root / "broker" / "queue",
        "data_folder_out": root / "broker" / "queue",
        "control_folder": root / "broker" / "control",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {key: str(folder) for key, folder in folders.items()}


def make_app(url: str, root: Path, **overrides) -> Flask:
    """Build a testing app on the database at url, with the admin token TOKEN."""
    config = {
        "TESTING": True,
        "DATABASE_URL": url,
        "ADMIN_TOKEN": TOKEN,
        "BROKER_URL": "filesystem://",
        "BROKER_TRANSPORT_OPTIONS": broker_folders(root),
        "REGISTRY": lambda: [],
        # Sources that report every tick: stale means 5 silent intervals.
        "UPDATE_CHANCE": 1.0,
    }
    config.update(overrides)
    return create_app(config)


def dispose(app: Flask) -> None:
    """Stop the app's registry refresher and close its database connections."""
    app.extensions["rome_registry"].stop()
    app.extensions["rome_db"].engine.dispose()


def clean_env(monkeypatch, root: Path) -> None:
    """Remove the developer's own ROME_* settings, which the factory would read."""
    for name in list(os.environ):
        if name.startswith("ROME_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ROME_DATA_DIR", str(root / "data"))


RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: reverses what follows it, until isolated
HOSTILE_RACE = "Mayor of Testville " + RLO + "evil"
HOSTILE_LAST = "Mallory" + RLO + "xx"
LONG_LAST = "Wolfeschlegelsteinhausenbergerdorff" * 8  # 280 characters, no space


def hostile(feed_at: float | None = None) -> Snapshot:
    """Return AP's report of a race whose names would garble the page (issue 23): an RLO in
    the race's and a candidate's name, a 292-character name; its county disagrees with its
    state figure, so the page also writes a name in a level-disagreement line."""
    from rome.feeds.snapshot import CandidateRef, Count, RaceRef, UnitRef

    return Snapshot(
        "ap", "ap", 5, time.time() if feed_at is None else feed_at,
        (RaceRef("X1", HOSTILE_RACE, "AZ"),),
        (UnitRef("S", "Arizona", "state"), UnitRef("C", "Pima", "county", "S")),
        (CandidateRef("X1", "c1", "Eve", HOSTILE_LAST, "DEM"),
         CandidateRef("X1", "c2", "Maximiliana", LONG_LAST, "GOP"),
         CandidateRef("X1", "c3", "Bob", "Builder", "IND")),
        (Count("X1", "S", "c1", 123_456), Count("X1", "S", "c2", 98_765),
         Count("X1", "S", "c3", 4_321), Count("X1", "C", "c1", 1_000)),
    ).validate()
