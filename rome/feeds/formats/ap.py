"""Read and write the AP Elections API v2 JSON (results and initialization responses).

Keys survive AP's quirks: reporting-unit ids are reused across levels and state
rows have none, so a unit is keyed by state, level and id ("AZ:state",
"AZ:county:4013"); race ids are unique within a state ("AZ-3013"); candidates
keep AP's candidateID. A "subunit" is a county, or a township in the New
England states (AP reports towns there). The version is the response's
``timestamp`` in whole microseconds since 1970 (the latest ``lastUpdated`` when
a response has none), and ``feed_at`` is the same instant in seconds. Races
marked ``test`` make the snapshot test data. A race's status comes from its top
unit: precincts reporting and the candidate AP marks ``winner: "X"`` there.
AP v2 JSON reports ``voteCount`` totals only, so every count is of type total.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from rome.feeds.formats._common import (
    STREAMED,
    JsonStream,
    byte_chunks,
    iso_micros,
    iso_text,
)
from rome.feeds.snapshot import (
    LEVEL_RANK,
    TOTAL,
    CandidateRef,
    Count,
    InvalidPayload,
    RaceRef,
    RaceStatus,
    Snapshot,
    UnitRef,
    canonical_party,
    is_iso_date,
)

NEW_ENGLAND = frozenset({"CT", "MA", "ME", "NH", "RI", "VT"})
# AP's own spelling of the parties Rome folds (canonical_party reads them back).
AP_PARTY = {"DEM": "Dem", "GOP": "GOP", "LIB": "Lib", "GRN": "Grn", "IND": "Ind"}
# What follows officeName in a race's name, as parse writes it.
RACE_NAME = re.compile(r"(?: - (?P<seat>.+?))?(?: \((?P<party>[^()]+)\))?", re.S)
POSTAL = re.compile(r"[A-Z]{2}")
AP_LEVELS = {"national": "national", "state": "state", "district": "district"}


def race_key(state: str, race_id: str) -> str:
    return f"{state}-{race_id}"


def unit_key(state: str, level: str, unit_id: str | None = None) -> str:
    return f"{state}:{level}" if unit_id is None else f"{state}:{level}:{unit_id}"


def _text(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidPayload(f"{where} must be text, got {value!r:.60}")
    return value


def _unit(row: dict, race: str) -> tuple[UnitRef, str]:
    """Return the unit a reportingUnits row describes, and its state."""
    state = row["statePostal"]
    if not isinstance(state, str) or not POSTAL.fullmatch(state):
        raise InvalidPayload(f"race {race}: statePostal must be a postal code, got {state!r:.40}")
    level = row["level"]
    if level == "subunit":
        level = "township" if state in NEW_ENGLAND else "county"
    elif level not in AP_LEVELS:
        raise InvalidPayload(f"race {race}: unknown reporting-unit level {level!r:.40}")
    if level in ("state", "national"):
        name = _text(row.get("stateName") or row.get("reportingunitName") or state, "stateName")
        return UnitRef(unit_key(state, level), name, level), state
    unit_id = row.get("reportingunitID")
    if not isinstance(unit_id, str) or not unit_id:
        raise InvalidPayload(f"race {race}: a {level} row has no reportingunitID")
    name = _text(row.get("reportingunitName"), "reportingunitName") or unit_id
    return UnitRef(unit_key(state, level, unit_id), name, level), state


def parse(body: bytes, *, source: str, version: int | None = None) -> Snapshot:
    """Read one AP v2 JSON response into a snapshot (not yet validated)."""
    return parse_chunks(byte_chunks(body), source=source, version=version)


def parse_chunks(chunks: Iterable[bytes], *, source: str,
                 version: int | None = None) -> Snapshot:
    """Read one AP v2 JSON response, given in pieces, into a snapshot (not yet validated).

    The response is read race by race (JsonStream): only the snapshot grows
    with it, never the decoded document, so a national answer of tens of MB
    costs its counts and no more.
    """
    stream = JsonStream(chunks, "AP", "races")
    races: list[RaceRef] = []
    units: dict[str, UnitRef] = {}
    candidates: dict[tuple[str, str], CandidateRef] = {}
    counts: list[Count] = []
    statuses: list[RaceStatus] = []
    latest: list[str] = []
    test = False
    for i, race in enumerate(stream.items()):
        try:
            races.append(_race(race, units, candidates, counts, statuses, latest))
        except KeyError as exc:
            raise InvalidPayload(f"AP race #{i} is missing field {exc.args[0]!r:.40}") from None
        except (TypeError, AttributeError) as exc:
            raise InvalidPayload(f"AP race #{i} has a field of the wrong type: {exc}") from None
        test = test or race.get("test") is True
    doc = stream.members
    if not isinstance(doc, dict) or doc.get("races") is not STREAMED:
        raise InvalidPayload("AP payload must be an object with a races list")
    if doc.get("timestamp") is not None:
        micros = iso_micros(doc["timestamp"], "AP timestamp")
    elif latest:
        micros = max(iso_micros(stamp, "AP lastUpdated") for stamp in latest)
    else:
        raise InvalidPayload("AP payload has no timestamp and no lastUpdated")
    states = {u.key.split(":", 1)[0]: u.key for u in units.values() if u.level == "state"}
    return Snapshot(
        source=source,
        format="ap",
        version=micros if version is None else version,
        feed_at=micros / 1_000_000,
        races=tuple(races),
        units=tuple(_with_parent(u, states) for u in units.values()),
        candidates=tuple(candidates.values()),
        counts=tuple(counts),
        statuses=tuple(statuses),
        test=test,
        # A date AP writes some other way is left out: it labels races, it orders nothing.
        election_date=doc["electionDate"] if is_iso_date(doc.get("electionDate")) else "",
        meta={"nextrequest": doc.get("nextrequest")},
    )


def _race(race: dict, units: dict, candidates: dict, counts: list, statuses: list,
          latest: list) -> RaceRef:
    """Read one race: its units, candidates and counts go into the lists given."""
    race_id = race["raceID"]
    if not isinstance(race_id, str) or not race_id:
        raise InvalidPayload(f"raceID must be text, got {race_id!r:.40}")
    rows = race.get("reportingUnits") or []
    found = [_unit(row, race_id) for row in rows]
    states = {state for _, state in found}
    if race.get("statePostal"):
        states.add(race["statePostal"])
    if not all(isinstance(s, str) and POSTAL.fullmatch(s) for s in states):
        raise InvalidPayload(f"race {race_id}: statePostal must be a postal code")
    if len(states) != 1:
        raise InvalidPayload(f"race {race_id} has {len(states)} states: {sorted(states)!r:.80}")
    state = states.pop()
    key = race_key(state, race_id)
    office = _text(race.get("officeName"), f"race {key} officeName")
    name = " - ".join(filter(None, (office, _text(race.get("seatName"), f"race {key} seatName"))))
    party = _text(race.get("party"), f"race {key} party")  # a primary's party
    if party:
        name = f"{name} ({party})"
    for entry in race.get("candidates") or []:  # initialization: no units yet
        _candidate(candidates, key, entry)
    top = None
    for row, (unit, _) in zip(rows, found, strict=True):
        units.setdefault(unit.key, unit)
        if row.get("lastUpdated") is not None:
            latest.append(row["lastUpdated"])
        for entry in row["candidates"]:
            candidate = _candidate(candidates, key, entry)
            counts.append(Count(key, unit.key, candidate, entry["voteCount"], TOTAL))
        if unit.level in ("state", "national") and (top is None or unit.level == "national"):
            top = row
    if top is not None:
        statuses.extend(_status(key, top))
    return RaceRef(key, name, state, office)


def _with_parent(unit: UnitRef, parents: dict[str, str]) -> UnitRef:
    """Hang every unit below its state row, when the response has one."""
    if unit.level in ("state", "national"):
        return unit
    parent = parents.get(unit.key.split(":", 1)[0])
    return UnitRef(unit.key, unit.name, unit.level, parent) if parent else unit


def _candidate(seen: dict, race: str, entry: dict) -> str:
    key = entry["candidateID"]
    if not isinstance(key, str) or not key:
        raise InvalidPayload(f"race {race}: candidateID must be text, got {key!r:.40}")
    if (race, key) not in seen:
        seen[race, key] = CandidateRef(
            race,
            key,
            _text(entry.get("first"), f"candidate {key} first"),
            _text(entry.get("last"), f"candidate {key} last"),
            canonical_party(_text(entry.get("party"), f"candidate {key} party")),
        )
    # The key the race's candidate holds: one string for all its counts, not one per row.
    return seen[race, key].key


def _status(race: str, row: dict) -> list[RaceStatus]:
    winners = [e["candidateID"] for e in row["candidates"] if e.get("winner") == "X"]
    reporting, total = row.get("precinctsReporting"), row.get("precinctsTotal")
    if reporting is None and total is None and not winners:
        return []
    # A race with several seats has several winners; RaceStatus holds one call.
    return [RaceStatus(race, reporting, total, winners[0] if len(winners) == 1 else None)]


def render(snapshot: Snapshot) -> bytes:
    """Write snapshot as an AP v2 JSON response (keys as this module makes them).

    The response timestamp is the version (µs since 1970), so ``feed_at`` must
    be ``version / 1_000_000``; counts must be totals; units must be national,
    state, district, county or (New England) township. Anything else raises
    ValueError: it cannot be said in AP's format.
    """
    if snapshot.feed_at != snapshot.version / 1_000_000:
        raise ValueError("AP keeps one time: feed_at must be version / 1_000_000")
    units = {u.key: u for u in snapshot.units}
    statuses = {s.race: s for s in snapshot.statuses}
    by_race: dict[str, dict[str, list[Count]]] = {r.key: {} for r in snapshot.races}
    for n in snapshot.counts:
        if n.vote_type != TOTAL:
            raise ValueError(f"AP v2 JSON has totals only, not {n.vote_type!r}")
        by_race[n.race].setdefault(n.unit, []).append(n)
    names = {(c.race, c.key): c for c in snapshot.candidates}
    races = []
    for r in snapshot.races:
        state, _, race_id = r.key.partition("-")
        if state != r.state or not race_id:
            raise ValueError(f"AP race key {r.key!r} is not state-raceID of state {r.state!r}")
        race = {"test": snapshot.test, "raceID": race_id, "raceType": "General",
                "raceTypeID": "G", "officeName": r.office}
        named = RACE_NAME.fullmatch(r.name.removeprefix(r.office)) if r.office else None
        if named is None:
            raise ValueError(f"AP race name {r.name!r} is not office [- seat] [(party)]")
        if named["seat"]:
            race["seatName"] = named["seat"]
        if named["party"]:
            race["party"] = named["party"]
        rows = by_race[r.key]
        if rows:
            order = sorted(rows, key=lambda k: LEVEL_RANK[units[k].level])
            status = statuses.get(r.key)
            if status is not None and units[order[0]].level not in ("state", "national"):
                raise ValueError(f"AP gives a race's status on its state row; {r.key} has none")
            race["reportingUnits"] = [
                _row(units[k], rows[k], names, status if i == 0 else None)
                for i, k in enumerate(order)
            ]
        else:
            race["statePostal"] = r.state
            race["candidates"] = [_person(c) for c in snapshot.candidates if c.race == r.key]
        races.append(race)
    doc = {
        "electionDate": snapshot.election_date or iso_text(snapshot.version, 0)[:10],
        "timestamp": iso_text(snapshot.version, 3 if snapshot.version % 1000 == 0 else 6),
        "races": races,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _row(unit: UnitRef, counts: list[Count], names: dict, status: RaceStatus | None) -> dict:
    state, level, *rest = unit.key.split(":", 2)
    if unit.key != unit_key(state, unit.level, *rest) or level not in (*AP_LEVELS, "county",
                                                                        "township"):
        raise ValueError(f"AP cannot say unit {unit.key!r} at level {unit.level!r}")
    if level in ("county", "township"):
        if (level == "township") != (state in NEW_ENGLAND):
            raise ValueError(f"AP has towns in New England, counties elsewhere: {unit.key}")
        row = {"statePostal": state, "reportingunitName": unit.name, "reportingunitID": rest[0],
               "level": "subunit"}
    elif level in ("state", "national"):
        row = {"statePostal": state, "stateName": unit.name, "level": level}
    else:
        row = {"statePostal": state, "reportingunitName": unit.name, "reportingunitID": rest[0],
               "level": level}
    if status is not None:
        if status.precincts_reporting is not None:
            row["precinctsReporting"] = status.precincts_reporting
        if status.precincts_total is not None:
            row["precinctsTotal"] = status.precincts_total
    entries = []
    for n in counts:
        entry = _person(names[n.race, n.candidate])
        entry["voteCount"] = n.votes
        if status is not None and status.winner == n.candidate:
            entry["winner"] = "X"
        entries.append(entry)
    row["candidates"] = entries
    return row


def _person(c: CandidateRef) -> dict:
    entry = {"first": c.first, "last": c.last} if c.first else {"last": c.last}
    entry["party"] = AP_PARTY.get(c.party, c.party)
    entry["candidateID"] = c.key
    return entry
