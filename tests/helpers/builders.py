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
