"""Write snapshots as NIST SP 1500-100 V2 JSON reports, the inverse of ``nist.parse``."""

from __future__ import annotations

import json

from rome.feeds.formats._common import iso_text
from rome.feeds.formats.nist import MAX_SEQUENCE
from rome.feeds.snapshot import (
    LEVEL_RANK,
    TOTAL,
    CandidateRef,
    Count,
    RaceRef,
    RaceStatus,
    Snapshot,
    UnitRef,
)

LEVEL_TYPES = {"national": "country", "state": "state", "district": "congressional",
               "county": "county", "township": "township", "precinct": "precinct",
               "batch": "ballot-batch"}
COUNT_TYPES = frozenset({"absentee", "absentee-fwab", "absentee-in-person", "absentee-mail",
                         "early", "election-day", "provisional", "seats", "uocava", "write-in"})


def render(snapshot: Snapshot) -> bytes:
    """Write snapshot as a NIST V2 JSON report that passes NIST's schema.

    Every key must be ``ISSUER:id`` with one issuer; the version must be
    ``seconds * 1_000_000 + sequence`` (sequence 1 to 999,999) with ``feed_at``
    those seconds. A race's district is its topmost counted unit; a race's
    state is written as an ocd-id on the state unit at or above it. Candidates
    are written as candidate selections, with a Person for their names.
    Anything that cannot be said raises ValueError.
    """
    seconds, sequence = divmod(snapshot.version, 1_000_000)
    if not 1 <= sequence <= MAX_SEQUENCE or snapshot.feed_at != seconds:
        raise ValueError("NIST needs version = feed_at seconds * 1_000_000 + sequence (1+)")
    prefixes = {k.split(":", 1)[0] for k in _keys(snapshot)}
    if len(prefixes) != 1 or any(":" not in k for k in _keys(snapshot)):
        raise ValueError(f"NIST keys must all be ISSUER:id with one issuer, got {prefixes!r:.80}")
    issuer = prefixes.pop()
    prefix = issuer + ":"
    units = {u.key: u for u in snapshot.units}
    tops = [u for u in snapshot.units if u.parent is None]
    if not tops:
        raise ValueError("NIST needs a unit to scope the election")
    doc = {
        "@type": "ElectionResults.ElectionReport",
        "Format": "precinct-level"
        if any(u.level in ("precinct", "batch") for u in snapshot.units) else "summary-contest",
        "GeneratedDate": iso_text(seconds * 1_000_000, 0),
        "Issuer": snapshot.meta.get("issuer") or issuer,
        "IssuerAbbreviation": issuer,
        "IsTest": snapshot.test,
        "SequenceStart": sequence,
        "SequenceEnd": sequence,
        "Status": snapshot.meta.get("status") or "unofficial-partial",
        "VendorApplicationId": "Rome",
    }
    districts = _districts(snapshot, units, tops[0].key)
    postal = _postal(snapshot, units, districts)
    children: dict[str, list[UnitRef]] = {}
    for u in snapshot.units:
        if u.parent is not None:
            children.setdefault(u.parent, []).append(u)
    doc["GpUnit"] = [_gp_unit(u, children.get(u.key, []), postal, prefix) for u in snapshot.units]
    parties = sorted({c.party for c in snapshot.candidates} - {"NP"})
    doc["Party"] = [{"@id": f"party-{p}", "@type": "ElectionResults.Party", "Name": _intl(p),
                     "Abbreviation": _intl(p)} for p in parties]
    offices = sorted({r.office for r in snapshot.races} - {""})
    doc["Office"] = [{"@id": f"office-{i}", "@type": "ElectionResults.Office", "Name": _intl(o)}
                     for i, o in enumerate(offices)]
    day = snapshot.election_date or doc["GeneratedDate"][:10]
    election = {"@type": "ElectionResults.Election", "ElectionScopeId": _raw(tops[0].key, prefix),
                "Name": _intl(snapshot.meta.get("election_name") or "General Election"),
                "StartDate": day, "EndDate": day, "Type": "general"}
    doc["Person"], election["Candidate"] = [], []
    statuses = {s.race: s for s in snapshot.statuses}
    counts: dict[tuple[str, str], list[Count]] = {}
    for n in snapshot.counts:
        counts.setdefault((n.race, n.candidate), []).append(n)
    by_race: dict[str, list[CandidateRef]] = {}
    for c in snapshot.candidates:
        by_race.setdefault(c.race, []).append(c)
    election["Contest"] = [
        _contest(r, by_race.get(r.key, []), counts, statuses.get(r.key), districts[r.key],
                 offices, doc["Person"], election["Candidate"], prefix)
        for r in snapshot.races
    ]
    doc["Election"] = [election]
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _keys(snapshot: Snapshot):
    yield from (r.key for r in snapshot.races)
    yield from (u.key for u in snapshot.units)
    yield from (c.key for c in snapshot.candidates)


def _raw(key: str, prefix: str) -> str:
    return key.removeprefix(prefix)


def _intl(text: str) -> dict:
    return {"@type": "ElectionResults.InternationalizedText",
            "Text": [{"@type": "ElectionResults.LanguageString", "Content": text,
                      "Language": "en"}]}


def _districts(snapshot: Snapshot, units: dict, scope: str) -> dict[str, str]:
    """Name each race's district: its topmost counted unit (the scope if it has none)."""
    districts: dict[str, str] = {}
    for n in snapshot.counts:
        current = districts.get(n.race)
        if current is None or LEVEL_RANK[units[n.unit].level] < LEVEL_RANK[units[current].level]:
            districts[n.race] = n.unit
    return {r.key: districts.get(r.key, scope) for r in snapshot.races}


def _state_unit(key: str | None, units: dict) -> str | None:
    while key is not None and units[key].level not in ("state", "national"):
        key = units[key].parent
    return key if key is not None and units[key].level == "state" else None


def _postal(snapshot: Snapshot, units: dict, districts: dict) -> dict[str, str]:
    """Give each state unit the postal code of the races under it, so parse reads them back."""
    postal: dict[str, str] = {}
    for r in snapshot.races:
        state = _state_unit(districts[r.key], units)
        if r.state and (state is None or postal.setdefault(state, r.state) != r.state):
            raise ValueError(f"NIST says race {r.key}'s state on one state unit above it")
    for r in snapshot.races:
        if postal.get(_state_unit(districts[r.key], units) or "", "") != r.state:
            raise ValueError(f"race {r.key} has no state but sits in {postal!r:.80}")
    return postal


def _gp_unit(u: UnitRef, children: list[UnitRef], postal: dict, prefix: str) -> dict:
    gp = {"@id": _raw(u.key, prefix), "@type": "ElectionResults.ReportingUnit",
          "Type": LEVEL_TYPES[u.level], "Name": _intl(u.name)}
    if any(LEVEL_RANK[c.level] <= LEVEL_RANK[u.level] for c in children):
        raise ValueError(f"NIST composes a unit of units below it; {u.key} has one that is not")
    if children:
        gp["ComposingGpUnitIds"] = [_raw(c.key, prefix) for c in children]
    if u.key in postal:
        gp["ExternalIdentifier"] = [{
            "@type": "ElectionResults.ExternalIdentifier", "Type": "ocd-id",
            "Value": f"ocd-division/country:us/state:{postal[u.key].lower()}"}]
    return gp


def _contest(r: RaceRef, choices: list[CandidateRef], counts: dict, status: RaceStatus | None,
             district: str, offices: list, people: list, candidates: list, prefix: str) -> dict:
    contest = {"@id": _raw(r.key, prefix), "@type": "ElectionResults.CandidateContest",
               "ElectionDistrictId": _raw(district, prefix), "Name": r.name, "VotesAllowed": 1}
    if r.office:
        contest["OfficeIds"] = [f"office-{offices.index(r.office)}"]
    if status is not None:
        if status.precincts_reporting is not None:
            contest["SubUnitsReported"] = status.precincts_reporting
        if status.precincts_total is not None:
            contest["TotalSubUnits"] = status.precincts_total
    selections = []
    for c in choices:
        sid = _raw(c.key, prefix)
        person = {"@id": f"p-{contest['@id']}-{sid}", "@type": "ElectionResults.Person",
                  "LastName": c.last}
        if c.first:
            person["FirstName"] = c.first
        people.append(person)
        candidate = {"@id": f"c-{contest['@id']}-{sid}", "@type": "ElectionResults.Candidate",
                     "BallotName": _intl(f"{c.first} {c.last}".strip()),
                     "PersonId": person["@id"]}
        if c.party != "NP":
            candidate["PartyId"] = f"party-{c.party}"
        if status is not None and status.winner == c.key:
            candidate["PostElectionStatus"] = "projected-winner"
        candidates.append(candidate)
        selections.append({
            "@id": sid, "@type": "ElectionResults.CandidateSelection",
            "CandidateIds": [candidate["@id"]],
            "VoteCounts": [_vote_count(n, prefix) for n in counts.get((r.key, c.key), [])],
        })
    contest["ContestSelection"] = selections
    return contest


def _vote_count(n: Count, prefix: str) -> dict:
    count = {"@type": "ElectionResults.VoteCounts", "GpUnitId": _raw(n.unit, prefix),
             "Count": n.votes}
    kind = n.vote_type.replace("_", "-")
    if n.vote_type == TOTAL or kind in COUNT_TYPES:
        count["Type"] = kind
    else:
        count["Type"], count["OtherType"] = "other", n.vote_type
    return count
