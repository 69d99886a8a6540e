"""Build small, known snapshots of the catalog's races for tests."""

from __future__ import annotations

import time

from rome.feeds.catalog import default_catalog
from rome.feeds.snapshot import TOTAL, CandidateRef, Count, RaceRef, RaceStatus, Snapshot, UnitRef


def race_snapshot(
    source: str,
    version: int,
    figures: dict[int, int],
    *,
    race_id: int | None = None,
    below: dict[str, dict[int, int]] | None = None,
    vote_types: dict[str, dict[int, int]] | None = None,
    feed_at: float | None = None,
    test: bool = False,
    winner: int | None = None,
    precincts: tuple[int, int] | None = None,
) -> Snapshot:
    """Return source's snapshot of one catalog race at version.

    figures: {candidate id: top-level votes}; below: {unit name: {candidate id:
    votes}} one level down; vote_types: {vote type: {candidate id: votes}} at
    the top level. The race is the source's first catalog race unless race_id.
    """
    catalog = default_catalog()
    race = catalog.races[race_id] if race_id else catalog.races_of(source)[0]
    race_key = race.keys[source]
    top_level, below_level = ("county", "precinct") if source == "mc" else ("state", "county")
    top = UnitRef("TOP", race.state or "Top", top_level)
    units = [top] + [UnitRef(name, name, below_level, "TOP") for name in (below or {})]
    key = {c.id: c.keys[source] for c in race.candidates}
    counts = [Count(race_key, "TOP", key[cid], votes) for cid, votes in figures.items()]
    for unit, by_candidate in (below or {}).items():
        counts += [Count(race_key, unit, key[cid], votes) for cid, votes in by_candidate.items()]
    for vote_type, by_candidate in (vote_types or {}).items():
        assert vote_type != TOTAL
        counts += [Count(race_key, "TOP", key[cid], votes, vote_type)
                   for cid, votes in by_candidate.items()]
    reporting, total = precincts or (None, None)
    return Snapshot(
        source=source,
        format=catalog.sources[source].format,
        version=version,
        feed_at=time.time() if feed_at is None else feed_at,
        races=(RaceRef(race_key, race.name, race.state, race.office),),
        units=tuple(units),
        candidates=tuple(CandidateRef(race_key, key[c.id], c.first, c.last, c.party)
                         for c in race.candidates),
        counts=tuple(counts),
        statuses=(RaceStatus(race_key, reporting, total, key[winner] if winner else None),),
        test=test,
    ).validate()


# A national night's shape: races spread over 50 states and a few offices.
STATES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
).split()
OFFICES = ("U.S. House", "State Senate", "State House", "Ballot Measure", "Governor")


def national_snapshot(races: int, *, version: int = 1, counties: int = 0,
                      feed_at: float | None = None, called_every: int = 7) -> Snapshot:
    """Return AP's report of `races` races over 50 states and five offices.

    Race i is in STATES[i % 50], office OFFICES[(i // 50) % 5], named after both;
    its three candidates get 100 + i, 200 + i and 50 votes at the state level (the
    second leads), and each of `counties` counties below it a share of those.
    Every `called_every`-th race is called for its leader; half the races say
    how many precincts report.
    """
    units = [UnitRef(f"S{s}", s, "state") for s in STATES] + [
        UnitRef(f"C{s}{n}", f"{s} county {n}", "county", f"S{s}")
        for s in STATES for n in range(counties)
    ]
    refs, candidates, counts, statuses = [], [], [], []
    for i in range(races):
        state, office = STATES[i % len(STATES)], OFFICES[(i // len(STATES)) % len(OFFICES)]
        key = f"N{i}"
        refs.append(RaceRef(key, f"{state} {office} District {i // 250 + 1}", state, office))
        figures = {"a": 100 + i, "b": 200 + i, "c": 50}
        for cand, last in (("a", "Adams"), ("b", "Baker"), ("c", "Chavez")):
            candidates.append(CandidateRef(key, cand, f"Pat{i}", last, "DEM"))
            counts.append(Count(key, f"S{state}", cand, figures[cand]))
        for n in range(counties):  # the first county has every vote so far
            counts += [Count(key, f"C{state}{n}", cand, votes if n == 0 else 0)
                       for cand, votes in figures.items()]
        precincts = (i % 10, 10) if i % 2 else (None, None)
        statuses.append(RaceStatus(key, *precincts, "b" if i % called_every == 0 else None))
    return Snapshot(
        source="ap", format="ap", version=version,
        feed_at=time.time() if feed_at is None else feed_at,
        races=tuple(refs), units=tuple(units), candidates=tuple(candidates),
        counts=tuple(counts), statuses=tuple(statuses),
    ).validate()
