"""Load the sources, races and candidates Rome knows before any feed arrives, from catalog.json.

The catalog names the demo's three sources and their formats, and says which
feed keys of which source mean the same race and candidate, so that two
sources reporting one race are shown side by side. A race or candidate no
catalog entry names is still taken: it becomes a race of its own, keyed by
its source and the feed's key (see rome_keys).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rome.feeds.snapshot import InvalidPayload

CATALOG_FILE = Path(__file__).with_name("catalog.json")
# Catalog ids stay below this; the database numbers the feeds' own races from it.
CATALOG_IDS = 1000


@dataclass(frozen=True)
class Candidate:
    id: int
    race_id: int
    first: str
    last: str
    party: str
    keys: dict[str, str]  # source id -> the feed's candidate key

    @property
    def key(self) -> str:
        return f"catalog:{self.id}"


@dataclass(frozen=True)
class Race:
    id: int
    name: str
    state: str
    office: str
    candidates: tuple[Candidate, ...]
    keys: dict[str, str]  # source id -> the feed's race key

    @property
    def key(self) -> str:
        return f"catalog:{self.id}"


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    code: str  # as the original's `source` column spelled it: "AP", "MC", "SOS"
    format: str


@dataclass(frozen=True)
class Catalog:
    parties: dict[str, str]
    races: dict[int, Race]
    sources: dict[str, Source]

    def __post_init__(self) -> None:
        by_feed_race: dict[tuple[str, str], Race] = {}
        by_feed_candidate: dict[tuple[str, str, str], Candidate] = {}
        for race in self.races.values():
            for source, key in race.keys.items():
                by_feed_race[(source, key)] = race
                for candidate in race.candidates:
                    if source in candidate.keys:
                        by_feed_candidate[(source, key, candidate.keys[source])] = candidate
        object.__setattr__(self, "_by_feed_race", by_feed_race)
        object.__setattr__(self, "_by_feed_candidate", by_feed_candidate)

    def races_of(self, source_id: str) -> list[Race]:
        """Return the catalog races source_id reports, by id."""
        return [race for race in self.races.values() if source_id in race.keys]

    def candidate(self, candidate_id: int) -> Candidate | None:
        for race in self.races.values():
            for candidate in race.candidates:
                if candidate.id == candidate_id:
                    return candidate
        return None

    def race_key(self, source_id: str, feed_key: str) -> str:
        """Return Rome's key for the race source_id calls feed_key."""
        race = self._by_feed_race.get((source_id, feed_key))
        return race.key if race else f"{source_id}:{feed_key}"

    def candidate_key(self, source_id: str, race_feed_key: str, feed_key: str) -> str:
        """Return Rome's key for a candidate, as source_id keys it within race_feed_key."""
        candidate = self._by_feed_candidate.get((source_id, race_feed_key, feed_key))
        if candidate:
            return candidate.key
        return f"{source_id}:{race_feed_key}:{feed_key}"


def parse_catalog(data: dict) -> Catalog:
    """Turn catalog JSON into a Catalog, checking ids and feed keys are unique."""
    races: dict[int, Race] = {}
    seen: set[int] = set()
    feed_keys: set[tuple[str, str]] = set()
    sources = {
        s["id"]: Source(s["id"], s["name"], s["code"], s["format"]) for s in data["sources"]
    }
    for race in data["races"]:
        if race["id"] in races:
            raise ValueError(f"race id {race['id']} is used twice")
        if not 0 < race["id"] < CATALOG_IDS:
            raise ValueError(f"race id {race['id']} must be 1 to {CATALOG_IDS - 1}")
        for source, key in race["keys"].items():
            if source not in sources:
                raise ValueError(f"race {race['id']} names unknown source {source!r}")
            if (source, key) in feed_keys:
                raise ValueError(f"feed key {source}:{key} names two races")
            feed_keys.add((source, key))
        candidates = []
        for c in race["candidates"]:
            if not 0 < c["id"] < CATALOG_IDS:
                raise ValueError(f"candidate id {c['id']} must be 1 to {CATALOG_IDS - 1}")
            if c["id"] in seen:
                raise ValueError(f"candidate id {c['id']} is used twice")
            if c["party"] not in data["parties"]:
                raise ValueError(f"candidate {c['id']} has unknown party {c['party']!r}")
            seen.add(c["id"])
            candidates.append(
                Candidate(c["id"], race["id"], c["first"], c["last"], c["party"], c["keys"])
            )
        races[race["id"]] = Race(
            race["id"], race["name"], race.get("state", ""), race.get("office", ""),
            tuple(candidates), race["keys"],
        )
    return Catalog(dict(data["parties"]), races, sources)


@cache
def default_catalog() -> Catalog:
    """Return the demo's sources and races, read once."""
    return parse_catalog(json.loads(CATALOG_FILE.read_text()))


def feed_format(source: object, format_name: object) -> str:
    """Return the format of source's feeds: the message's word, else the catalog's."""
    if format_name is not None:
        return format_name
    known = default_catalog().sources.get(source) if isinstance(source, str) else None
    if known is None:
        raise InvalidPayload(f"unknown source {source!r:.40} and no format given")
    return known.format
