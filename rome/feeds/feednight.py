"""Turn recorded feed files into nights: ordered versions of one feed, for the feed server.

Several recorded files of one feed are its versions, in their own version
order. A single file becomes a night of ``steps`` versions by partial progress,
written with Rome's own renderers: the units at the bottom of the file (those
with counts and no counted unit below them) report one after another, spread
over the steps; a unit above them shows the sum of what its reported units say
until all of them have reported, and then the file's own figure. A unit that
has not reported shows zeros; precincts reporting grow in proportion and a race
is called only once complete. The step at which every unit has reported is
served as the recorded bytes themselves, so the night ends exactly on the file.
An AP answer keeps every field of the file, its figures replaced (``ap_overlay``).
A step that changes no figure renders the same bytes as the step before it (its
time is that of the last change), so a feed changes only when its figures do.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

from rome.feeds.formats import ap, parse_feed, render_feed
from rome.feeds.formats._common import iso_text
from rome.feeds.replay import feed_files
from rome.feeds.snapshot import Count, RaceStatus, Snapshot

STEP_SECONDS = 60  # how far apart in feed time the derived versions of one file are


def leaves(snapshot: Snapshot) -> list[str]:
    """Return the counted units with no counted unit below them, in the file's order."""
    parents = {u.key: u.parent for u in snapshot.units}
    counted = {n.unit for n in snapshot.counts}
    above: set[str] = set()
    for unit in counted:
        parent, seen = parents.get(unit), 0
        while parent is not None and seen < len(parents):  # a cycle cannot loop forever
            above.add(parent)
            parent, seen = parents.get(parent), seen + 1
    return [u.key for u in snapshot.units if u.key in counted and u.key not in above]


def report_steps(snapshot: Snapshot, steps: int) -> dict[str, int]:
    """Return the step (1 to steps) at which each bottom unit reports."""
    bottom = leaves(snapshot)
    return {unit: i * steps // len(bottom) + 1 for i, unit in enumerate(bottom)}


def reported_by(snapshot: Snapshot, step: int, steps: int) -> set[str]:
    """Return the bottom units that have reported at step."""
    return {unit for unit, when in report_steps(snapshot, steps).items() if when <= step}


def partial(snapshot: Snapshot, step: int, steps: int) -> Snapshot | None:
    """Return snapshot as it stands at step of steps, or None once every unit has reported."""
    at = report_steps(snapshot, steps)
    reported = reported_by(snapshot, step, steps)
    if len(reported) == len(at):
        return None
    parents = {u.key: u.parent for u in snapshot.units}
    below: dict[str, set[str]] = {}
    for leaf in at:
        parent = parents.get(leaf)
        while parent is not None and leaf not in below.get(parent, ()):
            below.setdefault(parent, set()).add(leaf)
            parent = parents.get(parent)
    figures = {(n.race, n.unit, n.candidate, n.vote_type): n.votes for n in snapshot.counts}
    counts = []
    for n in snapshot.counts:
        if n.unit in at:
            votes = n.votes if n.unit in reported else 0
        elif below.get(n.unit, set()) <= reported:
            votes = n.votes
        else:
            votes = sum(figures.get((n.race, leaf, n.candidate, n.vote_type), 0)
                        for leaf in below.get(n.unit, ()) if leaf in reported)
        counts.append(Count(n.race, n.unit, n.candidate, votes, n.vote_type))
    race_units: dict[str, set[str]] = {}
    for n in snapshot.counts:
        if n.unit in at:
            race_units.setdefault(n.race, set()).add(n.unit)
    statuses = [_status(s, race_units.get(s.race, set()), reported) for s in snapshot.statuses]
    last = max(at[unit] for unit in reported) if reported else 0
    shift = (steps - last) * STEP_SECONDS
    if snapshot.format == "clarity":
        version, feed_at = snapshot.version, snapshot.feed_at - shift
    else:  # AP and NIST: the version is the feed time in µs (NIST adds a sequence number)
        version = snapshot.version - shift * 1_000_000
        feed_at = version / 1_000_000 if snapshot.format == "ap" else snapshot.feed_at - shift
    return replace(snapshot, version=max(version, 1), feed_at=max(feed_at, 0.0),
                   counts=tuple(counts), statuses=tuple(statuses))


def _status(status: RaceStatus, units: set[str], reported: set[str]) -> RaceStatus:
    done = len(units & reported)
    if units and done == len(units):
        return status
    share = done / len(units) if units else 0.0
    scaled = None if status.precincts_reporting is None else int(
        status.precincts_reporting * share)
    return RaceStatus(status.race, scaled, status.precincts_total, None)


def derive_night(format_name: str, body: bytes, steps: int) -> list[bytes]:
    """Return the versions of one recorded file's night: partial progress, then the file."""
    snapshot = parse_feed(format_name, body, source="feedserver", max_ahead=None)
    night = []
    for step in range(1, steps + 1):
        shown = partial(snapshot, step, steps)
        if shown is None:
            night.append(body)
        elif format_name == "ap":
            doc = ap_overlay(json.loads(body), shown, reported_by(snapshot, step, steps))
            night.append(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())
        else:
            night.append(render_feed(format_name, shown))
    return night


def ap_overlay(doc: dict, shown: Snapshot, reported: set[str]) -> dict:
    """Write shown's figures into a copy of the AP answer doc, keeping every other field.

    AP's answers carry much that Rome does not read (officeID, electTotal, ...);
    a poller may filter on them, so a derived version keeps them all.
    """
    votes = {(n.race, n.unit, n.candidate): n.votes for n in shown.counts}
    statuses = {s.race: s for s in shown.statuses}
    out = copy.deepcopy(doc)
    out["timestamp"] = iso_text(shown.version, 3)
    for race in out["races"]:
        rows = race.get("reportingUnits") or []
        units = [ap._unit(row, race["raceID"]) for row in rows]  # keyed as the parser keys
        if not units:
            continue
        key = ap.race_key(units[0][1], race["raceID"])
        status = statuses.get(key)
        for row, (unit, _) in zip(rows, units, strict=True):
            for entry in row["candidates"]:
                entry["voteCount"] = votes[key, unit.key, entry["candidateID"]]
                if status is not None and status.winner != entry["candidateID"]:
                    entry.pop("winner", None)
            if unit.level in ("state", "national"):
                share = None if status is None else status.precincts_reporting
            else:
                share = row.get("precinctsReporting") if unit.key in reported else 0
            if share is not None and "precinctsReporting" in row:
                row["precinctsReporting"] = share
                if row.get("precinctsTotal"):
                    row["precinctsReportingPct"] = round(100 * share / row["precinctsTotal"], 1)
    return out


def recorded_night(format_name: str, bodies: list[bytes], steps: int) -> list[bytes]:
    """Return the versions of one feed: several files in version order, or one file derived."""
    if len(bodies) == 1:
        return derive_night(format_name, bodies[0], steps)
    ordered = sorted(bodies, key=lambda body: parse_feed(format_name, body, source="feedserver",
                                                         max_ahead=None).feed_at)
    return ordered


def read_files(paths: list[Path], suffixes: tuple[str, ...]) -> list[tuple[Path, bytes]]:
    """Read every file named, and the files with one of suffixes below every folder named."""
    named = set(paths)
    return [(path, path.read_bytes()) for path in feed_files(paths)
            if path in named or path.suffix.lower() in suffixes]
