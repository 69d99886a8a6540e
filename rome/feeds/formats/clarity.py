"""Read and write Scytl/Clarity election-night ``detail.xml``, parsed with defusedxml only.

A file describes one jurisdiction, named by its ``Region``: a county file lists
its precincts (``VoterTurnout``), a state file its counties
(``ElectionVoterTurnout``). Each ``Choice``'s ``totalVotes`` is the top unit's
total; its ``VoteType`` elements give the top unit's votes by type and, below
them, one row per precinct or county. A row's total is the sum of its vote
types: Clarity gives no other. The top figure and the rows are both kept even
where they disagree (some published files do).

Clarity has names, not ids, and its contest keys change from file to file, so
keys are built from folded names (see ``unit_key``, ``race_key``,
``candidate_key``). The version is not in the file: Clarity numbers its
versions in the URL (``current_ver.txt``), so pass ``version``; without it the
version is the file's ``Timestamp`` in whole seconds since 1970, which is also
``feed_at``. Clarity has no test flag; an ``ElectionName`` with the word "test"
marks test data. Vote types are slugs of their names ("Election Day Votes" ->
"election_day").
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError, SubElement, indent, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from rome.feeds.formats._common import EPOCH, folded, vote_type_label, vote_type_slug
from rome.feeds.snapshot import (
    PARTY_SPELLINGS,
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

# Clarity stamps files in US local time with the zone's abbreviation.
ZONES = {"UTC": 0, "GMT": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6,
         "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10, "HDT": -9}
STAMP = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d\d):(\d\d) ([AP]M) ([A-Z]{3,4})")
# GA's files put the party in the choice's name: "Joseph R. Biden (Dem)".
NAMED_PARTY = re.compile(r"\(([A-Za-z]{1,12})\)\s*$")
NAMED_PARTIES = set(PARTY_SPELLINGS) - {"I", ""}  # "(I)" there marks the incumbent
TEST_NAME = re.compile(r"\btest\b", re.I)
POSTAL = re.compile(r"[A-Z]{2}")
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def unit_key(level: str, name: str, parent: str | None = None) -> str:
    """Key a unit by name: "county:atkinson", "county:atkinson/precinct:axson", "state:ga".

    Precincts sit under their county (names repeat across counties); counties
    and states stand alone, so a county is the same unit in its own file and in
    its state's file.
    """
    key = f"{level}:{folded(name)}"
    return f"{parent}/{key}" if level == "precinct" and parent else key


def race_key(text: str, vote_for: str) -> str:
    return f"{folded(text)}|{vote_for}"


def candidate_key(text: str) -> str:
    return folded(text)


def parse(body: bytes, *, source: str, version: int | None = None) -> Snapshot:
    """Read one detail.xml into a snapshot (not yet validated)."""
    try:
        # Clarity never sends a DTD; refusing any DOCTYPE refuses entity
        # expansion and external entities before either can happen.
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InvalidPayload(
            f"Clarity XML refused: {type(exc).__name__} ({exc}); a DTD could expand entities "
            f"or fetch external ones"
        ) from None
    except ParseError as exc:
        raise InvalidPayload(f"Clarity payload is not well-formed XML: {exc}") from None
    if root.tag != "ElectionResult":
        raise InvalidPayload(f"Clarity root element must be ElectionResult, got {root.tag!r:.40}")
    feed_at = _stamp(root.findtext("Timestamp"))
    region = (root.findtext("Region") or "").strip()
    if not region:
        raise InvalidPayload("Clarity file names no Region")
    listed, below = _listed(root)
    top_level = "county" if below == "precinct" else "state"
    top = UnitRef(unit_key(top_level, region), region, top_level)
    units = {top.key: top}
    by_name = {}
    for name in listed:
        unit = UnitRef(unit_key(below, name, top.key), name, below, top.key)
        if unit.key in units:
            raise InvalidPayload(f"Clarity lists {below} {name!r:.60} twice")
        units[unit.key] = by_name[name] = unit
    election = root.findtext("ElectionName") or ""
    snapshot = {"races": [], "candidates": [], "counts": [], "statuses": []}
    state = region if top_level == "state" and POSTAL.fullmatch(region) else ""
    for contest in root.iterfind("Contest"):
        _contest(contest, state, top, below, by_name, snapshot)
    return Snapshot(
        source=source,
        format="clarity",
        version=int(feed_at) if version is None else version,
        feed_at=feed_at,
        races=tuple(snapshot["races"]),
        units=tuple(units.values()),
        candidates=tuple(snapshot["candidates"]),
        counts=tuple(snapshot["counts"]),
        statuses=tuple(snapshot["statuses"]),
        test=bool(TEST_NAME.search(election)),
        election_date=_date(root.findtext("ElectionDate")),
        meta={"election_name": election},
    )


def _stamp(text: str | None) -> float:
    """Read "11/6/2020 1:05:50 PM EST" as seconds since 1970."""
    match = STAMP.fullmatch((text or "").strip())
    if match is None or match[8] not in ZONES:
        raise InvalidPayload(f"Clarity Timestamp is not M/D/YYYY h:mm:ss AM ZONE: {text!r:.60}")
    month, day, year, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        if not 1 <= hour <= 12:
            raise ValueError("hour must be 1 to 12")
        hour = hour % 12 + (12 if match[7] == "PM" else 0)
        local = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise InvalidPayload(f"Clarity Timestamp is no real time: {text!r:.60} ({exc})") from None
    seconds = (local - EPOCH).total_seconds() - ZONES[match[8]] * 3600
    if seconds < 0:
        raise InvalidPayload(f"Clarity Timestamp is before 1970: {text!r:.60}")
    return seconds


def _listed(root: Element) -> tuple[list[str], str]:
    """Return the units the file lists below its top, and their level."""
    county_file = root.find("VoterTurnout")
    if county_file is not None:
        return [p.get("name", "") for p in county_file.iterfind("Precincts/Precinct")], "precinct"
    state_file = root.find("ElectionVoterTurnout")
    if state_file is not None:
        return [c.get("name", "") for c in state_file.iterfind("Counties/County")], "county"
    raise InvalidPayload("Clarity file has neither VoterTurnout nor ElectionVoterTurnout")


def _votes(element: Element, attribute: str, where: str) -> int:
    text = element.get(attribute)
    if text is None:
        raise InvalidPayload(f"{where} has no {attribute}")
    if not text.isdigit() or not text.isascii() or len(text) > 12:
        raise InvalidPayload(f"{where} {attribute} must be a whole number, got {text!r:.40}")
    return int(text)


def _contest(contest: Element, state: str, top: UnitRef, below: str, by_name: dict,
             out: dict) -> None:
    text, vote_for = contest.get("text"), contest.get("voteFor", "1")
    if not text:
        raise InvalidPayload("a Clarity Contest has no text")
    race = race_key(text, vote_for)
    out["races"].append(RaceRef(race, text, state))
    where = f"contest {text!r:.60}"
    attributes = _status_attributes(below)
    reporting, total = (None if contest.get(a) is None else _votes(contest, a, where)
                        for a in attributes)
    if reporting is not None or total is not None:
        out["statuses"].append(RaceStatus(race, reporting, total))
    counts = out["counts"]
    for choice in contest.iterfind("Choice"):
        name = choice.get("text")
        if not name:
            raise InvalidPayload(f"{where} has a Choice with no text")
        candidate = candidate_key(name)
        party = choice.get("party") or ""
        named = NAMED_PARTY.search(name)
        if party in ("", "NP") and named and named[1].upper() in NAMED_PARTIES:
            party = named[1]
        out["candidates"].append(CandidateRef(race, candidate, "", name, canonical_party(party)))
        at = f"{where} choice {name!r:.40}"
        counts.append(Count(race, top.key, candidate, _votes(choice, "totalVotes", at), TOTAL))
        rows: dict[str, int] = {}
        for vote_type in choice.iterfind("VoteType"):
            slug = vote_type_slug(vote_type.get("name", ""))
            counts.append(Count(race, top.key, candidate, _votes(vote_type, "votes", at), slug))
            for row in vote_type:
                unit = by_name.get(row.get("name"))
                if unit is None or row.tag != below.title():
                    raise InvalidPayload(
                        f"{at} counts a {row.tag} the file does not list: {row.get('name')!r:.60}"
                    )
                votes = _votes(row, "votes", at)
                counts.append(Count(race, unit.key, candidate, votes, slug))
                rows[unit.key] = rows.get(unit.key, 0) + votes
        counts.extend(Count(race, unit, candidate, votes, TOTAL) for unit, votes in rows.items())


def render(snapshot: Snapshot) -> bytes:
    """Write snapshot as a Clarity detail.xml.

    The snapshot must have one top unit (a state or a county, no parent) and
    units one level below it (counties or precincts); every count below the top
    must be of a vote type, with the unit's total equal to their sum, as parse
    computes it. The Timestamp is ``feed_at`` (whole seconds, written in US
    Eastern time); the version is not written (Clarity keeps it in the URL), so
    parse gets it back only when it equals ``int(feed_at)`` or is passed in.
    Anything else raises ValueError.
    """
    tops = [u for u in snapshot.units if u.parent is None]
    if len(tops) != 1 or tops[0].level not in ("state", "county"):
        raise ValueError("Clarity writes one jurisdiction: one top state or county unit")
    top = tops[0]
    below = "county" if top.level == "state" else "precinct"
    children = [u for u in snapshot.units if u is not top]
    for u in children:
        if u.parent != top.key or u.level != below or u.key != unit_key(below, u.name, top.key):
            raise ValueError(f"Clarity cannot say unit {u.key!r}: {below}s under {top.key} only")
    if top.key != unit_key(top.level, top.name) or snapshot.feed_at != int(snapshot.feed_at):
        raise ValueError("Clarity needs a top unit keyed by its name and a whole-second feed_at")
    root = Element("ElectionResult")
    SubElement(root, "Timestamp").text = _stamp_text(int(snapshot.feed_at))
    election = snapshot.meta.get("election_name") or "General Election"
    if snapshot.test and not TEST_NAME.search(election):
        election = f"TEST {election}"
    elif not snapshot.test and TEST_NAME.search(election):
        raise ValueError(f"election name {election!r} says test but the snapshot is not")
    SubElement(root, "ElectionName").text = election
    SubElement(root, "ElectionDate").text = _date_text(snapshot.election_date) or _stamp_text(
        int(snapshot.feed_at)).split(" ")[0]
    SubElement(root, "Region").text = top.name
    if below == "precinct":
        listing = SubElement(SubElement(root, "VoterTurnout"), "Precincts")
    else:
        listing = SubElement(SubElement(root, "ElectionVoterTurnout"), "Counties")
    for u in children:
        SubElement(listing, below.title(), name=u.name)
    _contests(root, snapshot, top, below)
    indent(root, space="    ")
    text = tostring(root, encoding="unicode")
    if NOT_XML.search(text):
        raise ValueError("a name holds a character XML 1.0 cannot carry")
    return b'<?xml version="1.0"?>\n' + text.encode()


def _contests(root: Element, snapshot: Snapshot, top: UnitRef, below: str) -> None:
    names = {u.key: u.name for u in snapshot.units}
    statuses = {s.race: s for s in snapshot.statuses}
    counts: dict[tuple[str, str], list[Count]] = {}
    for n in snapshot.counts:
        counts.setdefault((n.race, n.candidate), []).append(n)
    state = top.name if top.level == "state" and POSTAL.fullmatch(top.name) else ""
    choices: dict[str, list[CandidateRef]] = {}
    for c in snapshot.candidates:
        choices.setdefault(c.race, []).append(c)
    for r in snapshot.races:
        vote_for = r.key.rpartition("|")[2]
        if r.key != race_key(r.name, vote_for) or r.state != state or r.office:
            raise ValueError(f"Clarity keys a contest by text|voteFor, has no office, and "
                             f"names its state only in a state's file: {r}")
        contest = SubElement(root, "Contest", key=str(len(root)), text=r.name, voteFor=vote_for,
                             isQuestion="false")
        status = statuses.get(r.key)
        if status is not None:
            if status.winner is not None:
                raise ValueError("Clarity does not call races")
            values = (status.precincts_reporting, status.precincts_total)
            for attribute, value in zip(_status_attributes(below), values, strict=True):
                if value is not None:
                    contest.set(attribute, str(value))
        for c in choices.get(r.key, []):
            _choice(contest, c, counts.get((r.key, c.key), []), top, names, below)


def _status_attributes(below: str) -> tuple[str, str]:
    if below == "county":
        return "precinctsReported", "precinctsParticipating"
    return "precinctsReported", "precinctsReporting"


def _choice(contest: Element, c: CandidateRef, counts: list[Count], top: UnitRef, names: dict,
            below: str) -> None:
    if c.first or c.key != candidate_key(c.last):
        raise ValueError(f"Clarity names a choice by its text only: {c.key!r}")
    at_top = {n.vote_type: n.votes for n in counts if n.unit == top.key}
    if TOTAL not in at_top:
        raise ValueError(f"Clarity needs a top total for {c.key!r}")
    choice = SubElement(contest, "Choice", key=str(len(contest) + 1), text=c.last,
                        party=c.party, totalVotes=str(at_top.pop(TOTAL)))
    rows: dict[str, dict[str, int]] = {}
    for n in counts:
        if n.unit != top.key:
            rows.setdefault(n.vote_type, {})[n.unit] = n.votes
    totals = rows.pop(TOTAL, {})
    sums: dict[str, int] = {}
    if set(rows) - set(at_top):
        raise ValueError(f"Clarity cannot say vote types {set(rows) - set(at_top)} of {c.key!r} "
                         f"without a top figure for each")
    for slug in at_top:
        if vote_type_slug(vote_type_label(slug)) != slug:
            raise ValueError(f"vote type {slug!r} does not come back from its Clarity name")
        vote_type = SubElement(choice, "VoteType", name=vote_type_label(slug),
                               votes=str(at_top[slug]))
        for unit, votes in rows.get(slug, {}).items():
            SubElement(vote_type, below.title(), name=names[unit], votes=str(votes))
            sums[unit] = sums.get(unit, 0) + votes
    if sums != totals:
        raise ValueError(f"Clarity row totals of {c.key!r} must be the sums of their vote types")


def _date(text: str | None) -> str:
    """Read Clarity's ElectionDate ("11/8/2016") as YYYY-MM-DD, or "" if it is no such day."""
    month, _, rest = (text or "").strip().partition("/")
    day, _, year = rest.partition("/")
    if not (month.isdigit() and day.isdigit() and year.isdigit() and len(year) == 4):
        return ""
    iso = f"{year}-{int(month):02d}-{int(day):02d}"
    return iso if is_iso_date(iso) else ""


def _date_text(iso: str) -> str:
    """Write YYYY-MM-DD as Clarity does ("11/8/2016"); "" stays ""."""
    if not iso:
        return ""
    year, month, day = iso.split("-")
    return f"{int(month)}/{int(day)}/{year}"


def _stamp_text(seconds: int) -> str:
    """Write seconds since 1970 as Clarity does, in US Eastern time ("11/6/2020 1:05:50 PM EST")."""
    zone = "EDT" if _eastern_summer(seconds) else "EST"
    local = time.gmtime(seconds + ZONES[zone] * 3600)
    hour = local.tm_hour % 12 or 12
    return (f"{local.tm_mon}/{local.tm_mday}/{local.tm_year} {hour}:{local.tm_min:02d}:"
            f"{local.tm_sec:02d} {'PM' if local.tm_hour >= 12 else 'AM'} {zone}")


def _eastern_summer(seconds: int) -> bool:
    """Tell whether US Eastern time keeps summer time then (the rule since 2007)."""
    year = time.gmtime(seconds).tm_year

    def sunday(month: int, nth: int) -> int:
        first = calendar.timegm((year, month, 1, 0, 0, 0))
        weekday = time.gmtime(first).tm_wday  # Monday is 0
        return first + ((6 - weekday) % 7 + 7 * (nth - 1)) * 86400

    return sunday(3, 2) + 7 * 3600 <= seconds < sunday(11, 1) + 6 * 3600
