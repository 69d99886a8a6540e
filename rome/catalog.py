"""Load the races, candidates and sources Rome knows about from catalog.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CATALOG_FILE = Path(__file__).with_name("catalog.json")


@dataclass(frozen=True)
class Candidate:
    id: int
    race_id: int
    first: str
    last: str
    party: str
    source_key: str


@dataclass(frozen=True)
class Race:
    id: int
    name: str
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    race_id: int


@dataclass(frozen=True)
class Catalog:
    parties: dict[str, str]
    races: dict[int, Race]
    sources: dict[str, Source]

    def race_of(self, source_id: str) -> Race:
        return self.races[self.sources[source_id].race_id]

    def candidate(self, candidate_id: int) -> Candidate | None:
        for race in self.races.values():
            for candidate in race.candidates:
                if candidate.id == candidate_id:
                    return candidate
        return None

    def candidate_by_key(self, source_id: str, key: str) -> Candidate | None:
        for candidate in self.race_of(source_id).candidates:
            if candidate.source_key == key:
                return candidate
        return None


def parse_catalog(data: dict) -> Catalog:
    """Turn catalog JSON into a Catalog, checking ids are unique across races."""
    races: dict[int, Race] = {}
    seen: set[int] = set()
    for race in data["races"]:
        candidates = []
        for c in race["candidates"]:
            if c["id"] in seen:
                raise ValueError(f"candidate id {c['id']} is used twice")
            if c["party"] not in data["parties"]:
                raise ValueError(f"candidate {c['id']} has unknown party {c['party']!r}")
            seen.add(c["id"])
            candidates.append(
                Candidate(c["id"], race["id"], c["first"], c["last"], c["party"], c["source_key"])
            )
        races[race["id"]] = Race(race["id"], race["name"], tuple(candidates))
    sources = {s["id"]: Source(s["id"], s["name"], s["race"]) for s in data["sources"]}
    for source in sources.values():
        if source.race_id not in races:
            raise ValueError(f"source {source.id} reports unknown race {source.race_id}")
    return Catalog(dict(data["parties"]), races, sources)


@cache
def default_catalog() -> Catalog:
    """Return the original demo's three races, read once."""
    return parse_catalog(json.loads(CATALOG_FILE.read_text()))
