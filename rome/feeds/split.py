"""Split a big snapshot into parts of bounded size, by race, for the broker and caesar.

A national answer is 100,000s of counts: as one message it would be tens of MB
on the broker and one transaction for one caesar process. ``split`` cuts it
into parts whose wire form (``Snapshot.to_wire``, as JSON) stays under a
bound, each part whole races (a race's counts, candidates and status) with the
units they name and those units' ancestors, so every part validates alone.
Parts share the snapshot's source, version and feed time, and the tally reads
a snapshot as "these counts at this version", never as "everything there is",
so applying the parts in any order, on any processes, ends where applying
the whole snapshot does. A race too big for one part alone is cut by units.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace

from rome.feeds.snapshot import Count, Snapshot, UnitRef

# Wire bytes per part: with Celery's envelope, a message stays under 1 MB.
MAX_PART_BYTES = 900_000


def _size(row: list) -> int:
    # The JSON of one row inside a list, with its separating comma.
    return len(json.dumps(row, ensure_ascii=False)) + 2


class _CountSizer:
    """_size of a count's row, from its fields' lengths: a national answer has 100,000s
    of counts but few distinct keys, so each key's JSON length is computed once."""

    def __init__(self) -> None:
        self.texts: dict[str, int] = {}

    def _text(self, value: str) -> int:
        size = self.texts.get(value)
        if size is None:
            size = self.texts[value] = len(json.dumps(value, ensure_ascii=False))
        return size

    def __call__(self, n: Count) -> int:
        # "[a, b, c, d, e]" is its five fields, 2 brackets and 4 ", " (10), then ", " after.
        return (self._text(n.race) + self._text(n.unit) + self._text(n.candidate)
                + self._text(n.vote_type) + len(str(n.votes)) + 12)


def split(snapshot: Snapshot, max_bytes: int = MAX_PART_BYTES) -> list[Snapshot]:
    """Return snapshot as parts whose wire JSON is at most about max_bytes each.

    A snapshot already that small is returned whole (a list of itself).
    """
    return [part for part, _ in _sized_parts(snapshot, max_bytes)]


def pack(snapshots: list[Snapshot], max_bytes: int = MAX_PART_BYTES) -> list[list[Snapshot]]:
    """Split each snapshot, then put the parts, in order, into batches of at most about
    max_bytes of wire JSON together: one message to caesar each, applied in one
    transaction. A state's poll cycle hands notekeeper dozens of small county files
    (rome/store/archive.py: claim_checks); as a message each, every county cost caesar a
    transaction of its own, a commit and a score of statements (docs/benchmarks.md).
    One snapshot's parts are its split, a batch each, as before."""
    if len(snapshots) == 1:
        return [[part] for part in split(snapshots[0], max_bytes)]
    batches: list[list[Snapshot]] = []
    batch: list[Snapshot] = []
    size = 0
    for snapshot in snapshots:
        for part, part_bytes in _sized_parts(snapshot, max_bytes):
            if batch and size + part_bytes > max_bytes:
                batches.append(batch)
                batch, size = [], 0
            batch.append(part)
            size += part_bytes + 2  # with the comma and space between them in a list
    if batch:
        batches.append(batch)
    return batches


def _sized_parts(snapshot: Snapshot, max_bytes: int) -> list[tuple[Snapshot, int]]:
    """split's parts, each with its wire JSON's bytes (about, for a part of a cut)."""
    # Each count is at least 12 bytes of wire: a big answer is not encoded whole to know
    # (its wire form would be a second copy of every count, 45 MB at 400,000 counts).
    if len(snapshot.counts) * 12 <= max_bytes:
        whole = len(json.dumps(snapshot.to_wire(), ensure_ascii=False))
        if whole <= max_bytes:
            return [(snapshot, whole)]
    units = {u.key: u for u in snapshot.units}
    unit_bytes = {u.key: _size([u.key, u.name, u.level, u.parent]) for u in snapshot.units}
    candidates: dict[str, list] = defaultdict(list)
    for c in snapshot.candidates:
        candidates[c.race].append(c)
    counts: dict[str, list[Count]] = defaultdict(list)
    for n in snapshot.counts:
        counts[n.race].append(n)
    statuses = {s.race: s for s in snapshot.statuses}
    header = len(json.dumps(replace(snapshot, races=(), units=(), candidates=(), counts=(),
                                    statuses=()).to_wire()))
    budget = max(max_bytes - header, 1)

    parts: list[tuple[Snapshot, int]] = []
    part = _Part()

    def close() -> None:
        nonlocal part
        if not part.empty():
            parts.append((part.snapshot(snapshot), header + part.size))
        part = _Part()

    count_size = _CountSizer()

    def count_cost(n: Count, grown: dict[str, UnitRef]) -> int:
        """Bytes count n adds to the part, with the units it brings (added to grown)."""
        cost = count_size(n)
        if n.unit not in part.units and n.unit not in grown:
            cost += sum(unit_bytes[k] for k in _missing(n.unit, part.units, units, grown))
        return cost

    for race in snapshot.races:
        fixed = _size([race.key, race.name, race.state, race.office]) + sum(
            _size([c.race, c.key, c.first, c.last, c.party]) for c in candidates[race.key])
        status = statuses.get(race.key)
        if status is not None:
            fixed += _size([status.race, status.precincts_reporting, status.precincts_total,
                            status.winner])
        race_counts = counts[race.key]
        grown: dict[str, UnitRef] = {}
        need = fixed + sum(count_cost(n, grown) for n in race_counts)
        if part.size + need > budget:
            close()  # whole races together where they fit
        part.add_race(race, candidates[race.key], status, fixed)
        for n in race_counts:  # one by one: a race bigger than a part goes on in the next
            grown = {}
            cost = count_cost(n, grown)
            if part.size + cost > budget and part.counts:
                close()
                part.add_race(race, candidates[race.key], status, fixed)
                grown = {}
                cost = count_cost(n, grown)
            part.units.update(grown)
            part.counts.append(n)
            part.size += cost
    # Units no count names (reference data alone) ride with the last part.
    named = {key for p, _ in parts for key in (u.key for u in p.units)} | set(part.units)
    for key in units:
        if key not in named:
            grown = {}
            part.size += sum(unit_bytes[k] for k in _missing(key, part.units, units, grown))
            part.units.update(grown)
    close()
    return parts


def _missing(key: str | None, have: dict, units: dict[str, UnitRef],
             grown: dict[str, UnitRef]) -> list[str]:
    """Add key and its ancestors not yet in have to grown; return the keys added."""
    added = []
    while key is not None and key not in have and key not in grown:
        grown[key] = units[key]
        added.append(key)
        key = units[key].parent
    return added


class _Part:
    """One part as it fills up."""

    def __init__(self) -> None:
        self.races: list = []
        self.candidates: list = []
        self.statuses: list = []
        self.units: dict[str, UnitRef] = {}
        self.counts: list[Count] = []
        self.size = 0

    def empty(self) -> bool:
        return not self.races and not self.units

    def add_race(self, race, candidates, status, fixed: int) -> None:
        self.races.append(race)
        self.candidates.extend(candidates)
        if status is not None:
            self.statuses.append(status)
        self.size += fixed

    def snapshot(self, whole: Snapshot) -> Snapshot:
        return replace(whole, races=tuple(self.races), candidates=tuple(self.candidates),
                       statuses=tuple(self.statuses), units=tuple(self.units.values()),
                       counts=tuple(self.counts))
