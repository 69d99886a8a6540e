"""Read and write NIST SP 1500-100 V2 election results reports in JSON.

Input is checked against NIST's own V2 JSON schema (``schemas/``) before it is
read. Every key is the document's ``@id`` scoped by its issuer
(``IssuerAbbreviation:@id``). ``GpUnit``s become units: a ReportingUnit's
``Type`` names its level (county -> county, city/town -> township, ...; a
ReportingDevice is a batch) and its parent is the unit that lists it in
``ComposingGpUnitIds`` nearest above it (a composition that does not go down a
level names no parent, so no cycle can form). Contests become races (the state
is read from an ``ocd-id`` on the contest's district or a unit above it), each
ContestSelection a candidate (ballot-measure selections are named by their
text), each ``VoteCounts`` a count of its ``Type`` ("election-day" ->
"election_day"; "other" -> its ``OtherType``); where a unit has counts by type
but no total, its total is their sum. ``SubUnitsReported``/``TotalSubUnits``
and a candidate's ``PostElectionStatus`` of (projected-)winner give the race's
status; ``IsTest`` marks test data. The version is ``GeneratedDate`` in whole
seconds since 1970 times 1,000,000 plus ``SequenceStart`` (a report's number in
its sequence, 1 to 999,999), so a later report, or a later part of one, is newer.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from rome.feeds.formats._common import iso_micros, load_json, vote_type_slug
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

SCHEMA = Path(__file__).with_name("schemas") / "NIST_V2_election_results_reporting.json"
UNIT_LEVELS = {
    "country": "national", "state": "state",
    "congressional": "district", "state-house": "district", "state-senate": "district",
    "judicial": "district", "school": "district", "city-council": "district",
    "county-council": "district", "utility": "district", "water": "district",
    "special": "district",
    "county": "county",
    "city": "township", "town": "township", "township": "township", "borough": "township",
    "municipality": "township", "village": "township", "ward": "township",
    "precinct": "precinct", "split-precinct": "precinct", "combined-precinct": "precinct",
    "polling-place": "precinct", "vote-center": "precinct", "ballot-style-area": "precinct",
    "ballot-batch": "batch", "drop-box": "batch",
}
WINNER = frozenset({"winner", "projected-winner"})
OCD_STATE = re.compile(r"ocd-division/country:us/state:([a-z]{2})(?:/|$)")
MAX_SEQUENCE = 999_999


@cache
def _definitions() -> dict:
    return json.loads(SCHEMA.read_text())["definitions"]


@cache
def _validator(definition: str = "ElectionResults.ElectionReport"):
    """Compile NIST's schema once, rooted at one of its definitions."""
    import jsonschema_rs

    schema = {"$ref": f"#/definitions/{definition}", "definitions": _definitions()}
    return jsonschema_rs.Draft4Validator(schema)


def check_schema(doc: object) -> None:
    """Raise InvalidPayload naming where doc departs from NIST's V2 JSON schema."""
    if _validator().is_valid(doc):
        return
    error = next(_validator().iter_errors(doc))
    path = list(error.instance_path)
    # "not valid under any of the given schemas" says little: look inside the
    # alternative its @type names, down to the first error that is not a oneOf.
    while error.schema_path and error.schema_path[-1] == "oneOf":
        kind = error.instance.get("@type") if isinstance(error.instance, dict) else None
        if not isinstance(kind, str) or kind not in _definitions():
            message = f"@type must be one of the types allowed here, got {kind!r:.60}"
            break
        inner = next(_validator(kind).iter_errors(error.instance), None)
        if inner is None:
            message = f"{kind} is valid alone but not here"
            break
        error = inner
        path += list(error.instance_path)
    else:
        message = error.message
    where = "/".join(str(p) for p in path) or "(top)"
    raise InvalidPayload(f"NIST report fails the V2 schema at {where}: {message:.200}")


def _text(value: dict | None) -> str:
    """Read an InternationalizedText, English where given."""
    if not value:
        return ""
    texts = value["Text"]
    return next((t["Content"] for t in texts if t["Language"].startswith("en")),
                texts[0]["Content"])


def parse(body: bytes, *, source: str, version: int | None = None) -> Snapshot:
    """Read one NIST V2 JSON report into a snapshot (not yet validated)."""
    doc = load_json(body, "NIST")
    try:
        check_schema(doc)
    except RecursionError:
        raise InvalidPayload("NIST payload is nested too deeply") from None
    prefix = doc["IssuerAbbreviation"].strip()
    if not prefix or ":" in prefix:
        raise InvalidPayload(f"NIST IssuerAbbreviation must be a name without ':', got "
                             f"{doc['IssuerAbbreviation']!r:.40}")
    prefix += ":"
    start, end = doc["SequenceStart"], doc["SequenceEnd"]
    if not 1 <= start <= min(end, MAX_SEQUENCE):
        raise InvalidPayload(f"NIST SequenceStart must be 1 to SequenceEnd and at most "
                             f"{MAX_SEQUENCE}, got {start} of {end}")
    micros = iso_micros(doc["GeneratedDate"], "NIST GeneratedDate")
    units, postal = _units(doc.get("GpUnit", []), prefix)
    parties = {p["@id"]: canonical_party(_text(p.get("Abbreviation")) or _text(p["Name"]))
               for p in doc.get("Party", [])}
    people = {p["@id"]: p for p in doc.get("Person", [])}
    offices = {o["@id"]: _text(o["Name"]) for o in doc.get("Office", [])}
    out = _Out(prefix, units, postal, parties, people, offices)
    for election in doc.get("Election", []):
        out.election(election)
    return Snapshot(
        source=source,
        format="nist",
        version=(micros // 1_000_000) * 1_000_000 + start if version is None else version,
        feed_at=micros / 1_000_000,
        races=tuple(out.races),
        units=tuple(units.values()),
        candidates=tuple(out.candidates),
        counts=tuple(out.counts),
        statuses=tuple(out.statuses),
        test=doc.get("IsTest") is True,
        election_date=_election_date(doc.get("Election", [])),
        meta={"issuer": doc["Issuer"], "status": doc["Status"]},
    )


def _election_date(elections: list) -> str:
    """Return the day the report's elections start on, or "" unless they all share one."""
    days = {election.get("StartDate") for election in elections}
    day = days.pop() if len(days) == 1 else ""
    return day if is_iso_date(day) else ""


def _units(gp_units: list, prefix: str) -> tuple[dict[str, UnitRef], dict[str, str]]:
    """Return the units by @id, parents set, and the postal code of those with a state ocd-id."""
    levels, names, postal = {}, {}, {}
    for gp in gp_units:
        uid = gp["@id"]
        if uid in levels:
            raise InvalidPayload(f"NIST GpUnit {uid!r:.60} is listed twice")
        if gp["@type"] == "ElectionResults.ReportingDevice":
            levels[uid] = "batch"
        elif gp["Type"] == "other":
            levels[uid] = (gp.get("OtherType") or "").casefold()
            if levels[uid] not in LEVEL_RANK:
                raise InvalidPayload(f"NIST GpUnit {uid!r:.60} has Type other with OtherType "
                                     f"{gp.get('OtherType')!r:.40}, which is no level Rome knows")
        else:
            levels[uid] = UNIT_LEVELS[gp["Type"]]
        names[uid] = _text(gp["Name"]) if "Name" in gp else uid
        for ident in gp.get("ExternalIdentifier", []):
            match = OCD_STATE.search(ident["Value"]) if ident["Type"] == "ocd-id" else None
            if match:
                postal[uid] = match[1].upper()
    parents: dict[str, str] = {}
    for gp in gp_units:
        rank = LEVEL_RANK[levels[gp["@id"]]]
        for child in gp.get("ComposingGpUnitIds", []):
            if child not in levels:
                raise InvalidPayload(f"NIST GpUnit {gp['@id']!r:.60} is composed of unknown "
                                     f"{child!r:.60}")
            current = parents.get(child)
            if rank < LEVEL_RANK[levels[child]] and (
                current is None or rank > LEVEL_RANK[levels[current]]
            ):
                parents[child] = gp["@id"]
    units = {}
    for uid, level in levels.items():
        parent = parents.get(uid)
        units[uid] = UnitRef(prefix + uid, names[uid], level, parent and prefix + parent)
    return units, postal


class _Out:
    """Collect the races, candidates, counts and statuses of a report's elections."""

    def __init__(self, prefix, units, postal, parties, people, offices):
        self.prefix, self.units, self.postal = prefix, units, postal
        self.parties, self.people, self.offices = parties, people, offices
        self.races, self.candidates, self.counts, self.statuses = [], [], [], []

    def known(self, table: dict, ref: str | None, where: str) -> str:
        """Look ref up in a table of the report (parties, offices), refusing unknown ones."""
        if ref is None:
            return ""
        if ref not in table:
            raise InvalidPayload(f"NIST {where!r:.60} refers to unknown {ref!r:.60}")
        return table[ref]

    def state_of(self, uid: str) -> str:
        seen = set()
        while uid is not None and uid not in seen:
            if uid in self.postal:
                return self.postal[uid]
            seen.add(uid)
            parent = self.units[uid].parent
            uid = parent and parent.removeprefix(self.prefix)
        return ""

    def election(self, election: dict) -> None:
        people = {c["@id"]: c for c in election.get("Candidate", [])}
        for contest in election.get("Contest", []):
            key = self.prefix + contest["@id"]
            district = contest["ElectionDistrictId"]
            if district not in self.units:
                raise InvalidPayload(f"NIST contest {key!r:.60} is in unknown district "
                                     f"{district!r:.60}")
            office_ids = contest.get("OfficeIds") or [contest.get("OfficeId")]
            office = self.known(self.offices, office_ids[0], key) if office_ids[0] else ""
            self.races.append(RaceRef(key, contest["Name"], self.state_of(district), office))
            winners = []
            for selection in contest.get("ContestSelection", []):
                winners += self.selection(key, selection, people)
            reporting = contest.get("SubUnitsReported")
            total = contest.get("TotalSubUnits")
            if reporting is not None or total is not None or winners:
                winner = winners[0] if len(winners) == 1 else None
                self.statuses.append(RaceStatus(key, reporting, total, winner))

    def selection(self, race: str, selection: dict, people: dict) -> list[str]:
        """Add one selection as a candidate with its counts; return it if it won."""
        key = self.prefix + selection["@id"]
        kind = selection["@type"]
        first, last, party, won = "", "", "", False
        if kind == "ElectionResults.BallotMeasureSelection":
            last = _text(selection["Selection"])
        elif kind == "ElectionResults.PartySelection":
            names = [self.known(self.parties, p, key) for p in selection["PartyIds"]]
            last, party = " / ".join(names), names[0]
        elif selection.get("CandidateIds"):
            ids = selection["CandidateIds"]
            unknown = [c for c in ids if c not in people]
            if unknown:
                raise InvalidPayload(f"NIST selection {key!r:.60} names unknown candidate "
                                     f"{unknown[0]!r:.60}")
            candidate = people[ids[0]]
            person = self.people.get(candidate.get("PersonId"), {})
            first = person.get("FirstName", "")
            last = person.get("LastName") or _text(candidate["BallotName"])
            party = self.known(self.parties, candidate.get("PartyId"), key)
            won = any(people[c].get("PostElectionStatus") in WINNER for c in ids)
        elif selection.get("IsWriteIn"):
            last = "Write-in"
        else:
            raise InvalidPayload(f"NIST selection {key!r:.60} names no candidate")
        if not party and selection.get("EndorsementPartyIds"):
            party = self.known(self.parties, selection["EndorsementPartyIds"][0], key)
        self.candidates.append(CandidateRef(race, key, first, last, canonical_party(party)))
        self.vote_counts(race, key, selection.get("VoteCounts", []))
        return [key] if won else []

    def vote_counts(self, race: str, candidate: str, vote_counts: list) -> None:
        by_type: dict[str, int] = {}
        totals: set[str] = set()
        for n in vote_counts:
            where = f"NIST count of {candidate!r:.60}"
            if "Round" in n or "DeviceClass" in n:
                raise InvalidPayload(f"{where}: counts by round or device class are not supported")
            unit = self.units.get(n["GpUnitId"])
            if unit is None:
                raise InvalidPayload(f"{where} is in unknown unit {n['GpUnitId']!r:.60}")
            kind = n["Type"]
            if kind == "total":
                vote_type = TOTAL
                totals.add(unit.key)
            elif kind == "other":
                vote_type = vote_type_slug(n.get("OtherType") or "other")
            else:
                vote_type = kind.replace("-", "_")
            votes = n["Count"]
            if isinstance(votes, float):
                if not votes.is_integer():
                    raise InvalidPayload(f"{where} is not a whole number: {votes!r:.40}")
                votes = int(votes)
            self.counts.append(Count(race, unit.key, candidate, votes, vote_type))
            if vote_type != TOTAL:
                by_type[unit.key] = by_type.get(unit.key, 0) + votes
        self.counts.extend(Count(race, unit, candidate, votes, TOTAL)
                           for unit, votes in by_type.items() if unit not in totals)


def render(snapshot: Snapshot) -> bytes:
    """Write snapshot as a NIST V2 JSON report that passes NIST's schema (see nist_render)."""
    from rome.feeds.formats import nist_render

    return nist_render.render(snapshot)
