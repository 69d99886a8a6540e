"""Simulate the three results feeds as cumulative snapshots, in the formats real sources publish.

Every figure is a pure function of (seed, race, unit, candidate, time since
the night began): two beat schedulers firing the same tick render the same
bytes. Units start counting at different times and finish at different
times; early votes arrive at once, election-day votes climb, provisional
ballots come last. Each source sees a unit's figures only on the ticks it
"reports" it (ROME_UPDATE_CHANCE), so AP and the Secretary of State, which
both report the presidential race for the state, disagree while counting
and agree at the end. Now and then a figure is overstated for a few ticks
and then corrected downward, and AP's state row briefly disagrees with the
sum of its counties: the feeds' faults Rome must show, not hide.

AP answers a client's first request in full and only then incrementally. A
tick-pure simulator cannot know which request is a beat's first (beat may
restart mid-night, and two beats must send the same bytes), so AP answers in
full on ticks fixed by the night alone: its first tick, and every
RESYNC_TICKS ticks after, as a poller's periodic full request would. A
consumer that missed the start, or a message, is whole again within
RESYNC_TICKS ticks.
"""

from __future__ import annotations

import hashlib
import math
import struct
import time
from dataclasses import dataclass

from rome.feeds.catalog import Candidate, Catalog, Race, default_catalog
from rome.feeds.formats import ap, clarity, render_feed
from rome.feeds.snapshot import TOTAL, CandidateRef, Count, RaceRef, RaceStatus, Snapshot, UnitRef

AZ_COUNTIES = ("Apache", "Cochise", "Coconino", "Gila", "Graham", "Greenlee", "La Paz",
               "Maricopa", "Mohave", "Navajo", "Pima", "Pinal", "Santa Cruz", "Yavapai", "Yuma")
# Vote types and their shares of a unit's ballots (provisional: what is left).
EARLY, ELECTION_DAY, PROVISIONAL = "early", "election_day", "provisional"
STATE, ISSUER = "AZ", "AZSOS"  # the simulated state, and its Secretary of State's NIST issuer
LOOKBACK = 400  # ticks searched back for a unit's last report
CORRECTION_WINDOW = 25  # ticks; a correction may happen once per window
DISAGREEMENT_WINDOW = 50
RESYNC_TICKS = 30  # AP answers in full every this many ticks of the night (1 min at 2 s)


def _unit_hash(*parts: object) -> float:
    """Return a number in [0, 1) fixed by parts."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return struct.unpack(">Q", digest)[0] / 2**64


@dataclass(frozen=True)
class Layout:
    """What one source reports of one race: its top unit and the units below it."""

    race: Race
    source: str
    feed_key: str
    top: UnitRef
    below: tuple[UnitRef, ...]


def unit_refs(fmt: str, top_level: str, top_name: str, names: list[tuple[int, str]]
              ) -> tuple[UnitRef, tuple[UnitRef, ...]]:
    """Return a top unit and the numbered units one level below it, keyed as fmt keys them."""
    below_level = "precinct" if top_level == "county" else "county"
    if fmt == "clarity":
        top_key = clarity.unit_key(top_level, top_name)
        keys = [clarity.unit_key(below_level, name, top_key) for _, name in names]
    elif fmt == "ap":
        top_key = ap.unit_key(STATE, top_level)
        keys = [ap.unit_key(STATE, below_level, f"{4001 + 2 * i}") for i, _ in names]
    else:  # nist: every id scoped by the issuer
        top_key = f"{ISSUER}:gpu-{top_name.lower()}"
        keys = [f"{ISSUER}:gpu-{i + 1}" for i, _ in names]
    top = UnitRef(top_key, top_name, top_level)
    return top, tuple(UnitRef(k, name, below_level, top_key)
                      for k, (_, name) in zip(keys, names, strict=True))


def top_of(source: str) -> tuple[str, str]:
    """Return the level and name of the unit a simulated source's races are reported for."""
    return ("county", "Maricopa") if source == "mc" else ("state", "Arizona")


def layouts(catalog: Catalog, source: str, units: int) -> list[Layout]:
    """Return the races source reports and the units it reports them by."""
    fmt = catalog.sources[source].format
    level, name = top_of(source)
    if level == "county":  # a county's feed: the county, then its precincts
        names = [f"Precinct {i + 1:04d}" for i in range(units)]
    else:  # a state's figure, then its counties
        names = [AZ_COUNTIES[i] if i < len(AZ_COUNTIES) else f"County {i + 1}"
                 for i in range(units)]
    top, below = unit_refs(fmt, level, name, list(enumerate(names)))
    return [Layout(race, source, race.keys[source], top, below)
            for race in catalog.races_of(source)]


def stamp(fmt: str, tick: int, interval: float) -> tuple[int, float]:
    """Return (version, feed time) of a tick's file, by fmt's own rule (docs/formats.md)."""
    seconds = tick * interval
    if fmt == "ap":  # the response timestamp, in microseconds
        version = round(seconds * 1_000_000)
        return version, version / 1_000_000
    if fmt == "nist":  # GeneratedDate, then SequenceStart within the second
        whole = math.floor(seconds)
        return whole * 1_000_000 + min(999_999, 1 + int((seconds - whole) * 1_000_000)), whole
    return tick, float(math.floor(seconds))  # clarity: the version folder; whole seconds


@dataclass(frozen=True)
class Night:
    """The simulation's fixed parameters."""

    seed: str
    chance: float
    interval: float
    started_at: float  # epoch seconds of the night's first tick
    length: float = 10_800.0  # seconds until every unit has counted


def _progress(night: Night, race: Race, unit: str, seconds: float) -> tuple[float, float, bool]:
    """Return (election-day share counted, early counted 0/1, provisional counted) at seconds."""
    # Early ballots are counted before polls close: each unit releases them within
    # a minute of the night's start, so the page has figures from the first minute.
    early = 1.0 if seconds >= 60.0 * _unit_hash(night.seed, "early-at", race.id, unit) else 0.0
    # Squared: most units start counting the day's ballots early, a few trail in late.
    start = night.length * 0.4 * _unit_hash(night.seed, "start", race.id, unit) ** 2
    duration = night.length * (0.2 + 0.4 * _unit_hash(night.seed, "dur", race.id, unit))
    if seconds < start:
        return 0.0, early, False
    day = min(1.0, (seconds - start) / duration)
    return day, early, seconds >= start + duration


def unit_counts(night: Night, race: Race, unit: str, seconds: float) -> dict[str, list[int]]:
    """Return {vote type: [votes per candidate]} for one unit after seconds of counting."""
    size = 1_000 + int(60_000 * _unit_hash(night.seed, "size", race.id, unit))
    weights = [
        (0.5 + _unit_hash(night.seed, "w", race.id, c.id))
        * (0.7 + 0.6 * _unit_hash(night.seed, "w", race.id, c.id, unit))
        for c in race.candidates
    ]
    early_share = 0.3 + 0.3 * _unit_hash(night.seed, "early", race.id, unit)
    day, early, provisional = _progress(night, race, unit, seconds)
    result: dict[str, list[int]] = {EARLY: [], ELECTION_DAY: [], PROVISIONAL: []}
    total_weight = sum(weights)
    for weight in weights:
        final = size * weight / total_weight
        result[EARLY].append(math.floor(final * early_share * early))
        result[ELECTION_DAY].append(math.floor(final * (0.97 - early_share) * day))
        result[PROVISIONAL].append(math.floor(final * 0.03) if provisional else 0)
    return result


def last_report(night: Night, source: str, unit: str, tick: int) -> int | None:
    """Return the newest tick at or before tick on which source reported unit."""
    for back in range(LOOKBACK):
        if _unit_hash(night.seed, "report", source, unit, tick - back) < night.chance:
            return tick - back
    return None


def _seconds(night: Night, tick: int) -> float:
    return tick * night.interval - night.started_at


def answers_in_full(night: Night, tick: int) -> bool:
    """Tell whether AP answers tick in full: the night's first, and every RESYNC_TICKS after."""
    # The night's first tick is the first slot that starts at or after started_at.
    since_start = tick - math.ceil(night.started_at / night.interval)
    return since_start >= 0 and since_start % RESYNC_TICKS == 0


def race_snapshot_counts(
    night: Night, source: str, layout: Layout, tick: int
) -> tuple[list[Count], int, bool]:
    """Return one race's counts as source reports them at tick, units reporting, and
    whether every unit has finished counting (as far as source has seen)."""
    race, counts = layout.race, []
    top: dict[str, list[int]] = {}
    reporting, finished = 0, True
    for unit in layout.below:
        # The truth is the unit's, whoever reports it; what a source sees of it is its own.
        seen = last_report(night, source, unit.name, tick)
        seconds = _seconds(night, seen) if seen is not None else -1.0
        figures = unit_counts(night, race, unit.name, seconds)
        day, _, done = _progress(night, race, unit.name, seconds)
        finished = finished and done
        if (seen is not None and seen % CORRECTION_WINDOW < 5
                and _unit_hash(night.seed, "overstate", source, unit.name,
                               seen // CORRECTION_WINDOW) < 0.05):
            # A typo upstream, fixed a few ticks later: a correction downward.
            figures[ELECTION_DAY][0] += 100
        reporting += day > 0  # a precinct reports once its day's ballots are being counted
        totals = [sum(column) for column in zip(*figures.values(), strict=True)]
        for vote_type, values in (*figures.items(), (TOTAL, totals)):
            for candidate, votes in zip(race.candidates, values, strict=True):
                counts.append(Count(layout.feed_key, unit.key, candidate.keys[source], votes,
                                    vote_type))
            running = top.setdefault(vote_type, [0] * len(race.candidates))
            for i, votes in enumerate(values):
                running[i] += votes
    if (source == "ap" and reporting
            and _unit_hash(night.seed, "disagree", tick // DISAGREEMENT_WINDOW) < 0.2
            and tick % DISAGREEMENT_WINDOW < 10):
        top[TOTAL][0] += 7  # the state row briefly disagrees with its counties
    for vote_type, values in top.items():
        for candidate, votes in zip(race.candidates, values, strict=True):
            counts.append(Count(layout.feed_key, layout.top.key, candidate.keys[source], votes,
                                vote_type))
    return counts, reporting, finished


def simulate(
    source: str,
    tick: int,
    night: Night,
    *,
    units: int = len(AZ_COUNTIES),
    catalog: Catalog | None = None,
    full: bool = False,
) -> Snapshot | None:
    """Return source's snapshot at tick, or None when nothing changed since the tick before.

    AP answers like its API: every race on the night's first tick and every
    RESYNC_TICKS ticks after (answers_in_full), in between only the races that
    changed, as its incremental requests do. Clarity and NIST publish a whole
    new version of the file when anything in it changed. With full, every
    race is in the snapshot, changed or not (the feed server's current state).
    """
    catalog = catalog or default_catalog()
    fmt = catalog.sources[source].format
    full = full or (fmt == "ap" and answers_in_full(night, tick))
    parts = []
    for layout in layouts(catalog, source, units):
        now = race_snapshot_counts(night, source, layout, tick)
        before = race_snapshot_counts(night, source, layout, tick - 1)
        parts.append((layout, now, full or now[0] != before[0]))
    if not any(changed for _, _, changed in parts):
        return None
    if fmt == "ap":
        parts = [part for part in parts if part[2]]
    races, units, candidates, counts, statuses = [], {}, [], [], []
    for layout, (race_counts, reporting, finished), _ in parts:
        race = layout.race
        races.append(race_ref(fmt, race, layout.feed_key))
        units[layout.top.key] = layout.top
        units.update((u.key, u) for u in layout.below)
        candidates += [candidate_ref(fmt, source, layout.feed_key, c) for c in race.candidates]
        # AP's API carries no vote types: its figures are totals.
        counts += [n for n in race_counts if fmt != "ap" or n.vote_type == TOTAL]
        statuses.append(RaceStatus(
            layout.feed_key, reporting, len(layout.below),
            _winner(layout, race_counts) if finished and fmt == "ap" else None,
        ))
    version, feed_at = stamp(fmt, tick, night.interval)
    return Snapshot(
        source=source, format=fmt, version=version, feed_at=feed_at,
        races=tuple(races), units=tuple(units.values()), candidates=tuple(candidates),
        counts=tuple(counts), statuses=tuple(statuses),
        # The night's own day, the same in every source's feed and in every tick of it.
        election_date=time.strftime("%Y-%m-%d", time.gmtime(night.started_at)),
    )


def race_ref(fmt: str, race: Race, feed_key: str) -> RaceRef:
    """Name a race as fmt does: AP by its office, Clarity by the contest's text alone."""
    if fmt == "ap":
        return RaceRef(feed_key, race.office, race.state, race.office)
    if fmt == "clarity":  # a county's file names no state and no office
        return RaceRef(feed_key, race.name)
    return RaceRef(feed_key, race.name, race.state, race.office)


def candidate_ref(fmt: str, source: str, feed_key: str, c: Candidate) -> CandidateRef:
    """Name a candidate as fmt does: Clarity has one text, "LAST, FIRST"."""
    if fmt == "clarity":
        return CandidateRef(feed_key, c.keys[source], "", f"{c.last}, {c.first}".upper(),
                            c.party)
    return CandidateRef(feed_key, c.keys[source], c.first, c.last, c.party)


def _winner(layout: Layout, counts: list[Count]) -> str | None:
    """Call the race for the leader of the top unit, unless it is tied."""
    top = sorted((n for n in counts if n.unit == layout.top.key and n.vote_type == TOTAL),
                 key=lambda n: n.votes, reverse=True)
    if len(top) > 1 and top[0].votes > top[1].votes:
        return top[0].candidate
    return None


def emit_tick(
    source: str,
    tick: int,
    night: Night,
    *,
    units: int = len(AZ_COUNTIES),
    catalog: Catalog | None = None,
) -> tuple[bytes | None, int]:
    """Return (the feed body source publishes at tick, or None, and how many counts it carries)."""
    catalog = catalog or default_catalog()
    snapshot = simulate(source, tick, night, units=units, catalog=catalog)
    if snapshot is None:
        return None, 0
    return render_feed(snapshot.format, snapshot), len(snapshot.counts)


def current_tick(interval: float, now: float | None = None) -> int:
    """Number the wall-clock slot of length interval that now falls in."""
    return int((time.time() if now is None else now) // interval)
