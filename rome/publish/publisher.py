"""Bake races into the published folder with the API's own views, rewriting only what changed.

The folder (ROME_PUBLISH_DIR):

    index.json            national_index, as /api/index
    sources.json          every source and when it was last heard from (heard_sources)
    states/<XX>.json      state_races, as /api/states/<XX>
    races/<id>.json       one race, as /api/races/<id>
    races/<id>.html       its page, which polls <id>.json and ../sources.json
    assets/race.js, .css  what the pages load

and a .gz beside each. A publish of some races reads their states with state_races
(the API's view), writes each of those states, the races asked for and the index;
a race file is rewritten only when its bytes change. A race Rome no longer shows
(after a wipeout) is unpublished.

Every publish, of any races or none, writes sources.json first (its bytes change only
when a source is heard from, or added). A race file's sources say whether each was stale
when that race last changed, which may be long ago: the race pages judge staleness
with sources.json's heard_at by the server's clock instead, at every poll. Every
file of one publish is read with the same heard_at, and sources.json is renamed
into place before any of them, so its heard_at is never older than a race file's.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from rome.publish.files import folder_lock, publish_file, sweep_temporary, unpublish_file
from rome.publish.pages import ASSETS, race_page
from rome.read.listing import national_index, state_races
from rome.read.results import heard_by_source, heard_sources
from rome.store.db import Database
from rome.store.models import RaceRow

INDEX = "index.json"
SOURCES = "sources.json"
STATES = "states"
RACES = "races"


def encode(answer: object) -> bytes:
    """The bytes Flask answers for answer: compact, keys sorted, ASCII, a newline at the end."""
    return (json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
            + "\n").encode()


@dataclass
class Published:
    """What one publish did: the files it wrote and removed (names relative to the folder,
    without their .gz), and the races it read."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    races: int = 0


class Publisher:
    """Publish into one folder."""

    def __init__(self, root: Path, stale_after: float | None = None):
        self.root = root
        self.stale_after = stale_after

    def _put(self, name: str, data: bytes, done: Published) -> None:
        if publish_file(self.root / name, data):
            done.written.append(name)

    def _drop(self, name: str, done: Published) -> None:
        if unpublish_file(self.root / name):
            done.removed.append(name)

    def publish(self, session: Session, race_ids: Collection[int] | None = None,
                now: datetime | None = None) -> Published:
        """Publish sources.json, these races (every race for None, none for an empty
        collection), their states and the index."""
        done = Published()
        everything = race_ids is None
        # Read once: every file of this publish says the same of each source.
        heard = heard_by_source(session)
        if everything:
            if self.root.exists():
                sweep_temporary(self.root)
            for name, text in ASSETS.items():
                self._put(name, text.encode(), done)
            states = set(session.scalars(select(RaceRow.state).distinct()))
        else:
            race_ids = set(race_ids)
            states = set(session.scalars(select(RaceRow.state).distinct()
                                         .where(RaceRow.id.in_(race_ids)))) if race_ids else set()
        self._put(SOURCES, encode(heard_sources(session, heard, self.stale_after)), done)
        shown: set[int] = set()
        for state in sorted(states):
            answer = state_races(session, state, now, self.stale_after, heard)
            if answer is None:
                self._drop(f"{STATES}/{state}.json", done)
                continue
            self._put(f"{STATES}/{state}.json", encode(answer), done)
            for race in answer["races"]:
                shown.add(race["id"])
                if everything or race["id"] in race_ids:
                    done.races += 1
                    self._put(f"{RACES}/{race['id']}.json", encode(race), done)
                    self._put(f"{RACES}/{race['id']}.html", race_page(race["id"], race["name"]),
                              done)
        self._put(INDEX, encode(national_index(session)), done)
        # Unpublish what Rome no longer shows: every such file on a full publish, else
        # those of the races asked for.
        if everything:
            for path in sorted((self.root / STATES).glob("*.json")):
                if path.stem not in states:
                    self._drop(f"{STATES}/{path.name}", done)
            gone = {int(p.stem) for p in (self.root / RACES).glob("*.json")
                    if p.stem.isdigit()} - shown
        else:
            gone = race_ids - shown
        for race_id in sorted(gone):
            self._drop(f"{RACES}/{race_id}.json", done)
            self._drop(f"{RACES}/{race_id}.html", done)
        return done

    def publish_from(self, database: Database,
                     race_ids: Collection[int] | None = None) -> Published:
        """Publish under the folder's lock, read in a session of its own: what is read
        after another publish finished is written after it too."""
        with folder_lock(self.root), database.Session() as session:
            return self.publish(session, race_ids, datetime.now(UTC))
