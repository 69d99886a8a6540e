"""Turn a snapshot's feed keys into Rome's ids, storing the races, units and candidates it adds.

Rome's key of a race or candidate is the catalog's where the catalog names it
(so two sources' keys for one race meet), else "<source>:<feed key>"; a
unit's is "<source>:<level>:<feed key>", so its level never changes. Ids are
assigned by the database on first sight and never change, so a redelivered
or reordered snapshot maps the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ARRAY, String, Table, any_, bindparam, cast, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rome.feeds.catalog import Catalog
from rome.feeds.snapshot import LEVEL_RANK, Snapshot
from rome.store.models import CandidateRow, RaceRow, SourceRow, UnitRow


@dataclass(frozen=True)
class Resolved:
    """Rome's ids for every feed key of one snapshot."""

    races: dict[str, int]  # race feed key -> race id
    candidates: dict[tuple[str, str], int]  # (race feed key, candidate feed key) -> id
    units: dict[str, tuple[int, int]]  # unit feed key -> (unit id, level rank)


def _insert(session: Session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _ensure(session: Session, table: Table, rows: list[dict]) -> dict[str, int]:
    """Return {key: id} for rows, inserting the ones not stored yet (first writer's names win)."""
    if not rows:
        return {}
    keys = sorted({row["key"] for row in rows})
    known = _ids(session, table, keys)
    missing = [row for row in rows if row["key"] not in known]
    if missing:
        # Sorted, so two batches adding the same keys lock them in one order.
        missing = sorted({row["key"]: row for row in missing}.values(), key=lambda r: r["key"])
        stmt = _insert(session)(table).on_conflict_do_nothing(index_elements=["key"])
        session.execute(stmt, missing)
        known.update(_ids(session, table, [row["key"] for row in missing]))
    return known


def _ids(session: Session, table: Table, keys: list[str]) -> dict[str, int]:
    """{key: id} of the keys stored in table."""
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: an IN list of thousands of keys is slow to build.
        return dict(session.execute(select(table.c.key, table.c.id).where(
            table.c.key == any_(cast(bindparam("keys", keys), ARRAY(String))))).all())
    return dict(session.execute(select(table.c.key, table.c.id)
                                .where(table.c.key.in_(keys))).all())


def unit_key(source: str, level: str, feed_key: str) -> str:
    """Return Rome's key of a unit: its level is part of it, so a key's level never changes."""
    return f"{source}:{level}:{feed_key}"


def ensure_source(session: Session, source: str, format_name: str) -> None:
    """Store a source the catalog does not name (a replayed feed) on first sight."""
    if session.get(SourceRow, source) is None:
        stmt = _insert(session)(SourceRow).on_conflict_do_nothing(index_elements=["id"])
        session.execute(stmt, [{"id": source, "name": source, "code": source.upper(),
                                "format": format_name}])


# Every id a batch's snapshots need, where all are stored: one round trip, not one per
# table or per snapshot. A probe of the unique key's index per key (LIMIT 1 keeps each
# probe a subquery of its own: keys are unique, so it changes no answer), not `key =
# ANY(keys)` nor a join: without statistics (no ANALYZE yet) the planner scans the
# table, comparing each row with every key or hashing it. A Clarity message's 164 keys
# (3,029 candidates stored): 0.5 ms probing, 1.7 ms joined; `key = ANY` took 3.6 ms for
# 60 candidate keys alone. The scans grow with the tables; the probes do not.
PG_KNOWN = text("""
SELECT 0, r.key, r.id, r.election_date FROM unnest(CAST(:races AS text[])) AS k(key)
    CROSS JOIN LATERAL (SELECT key, id, election_date FROM races
                        WHERE races.key = k.key LIMIT 1) r
UNION ALL SELECT 1, c.key, c.id, NULL FROM unnest(CAST(:candidates AS text[])) AS k(key)
    CROSS JOIN LATERAL (SELECT key, id FROM candidates WHERE candidates.key = k.key LIMIT 1) c
UNION ALL SELECT 2, u.key, u.id, NULL FROM unnest(CAST(:units AS text[])) AS k(key)
    CROSS JOIN LATERAL (SELECT key, id FROM units WHERE units.key = k.key LIMIT 1) u
UNION ALL SELECT 3, id, 0, NULL FROM sources WHERE id = ANY(:sources)
""")


def _keys(snapshot: Snapshot, catalog: Catalog) -> tuple[dict, dict, dict]:
    """Rome's keys of the snapshot's races and candidates (by feed key), and of its units
    with their level ranks."""
    source = snapshot.source
    race_keys = {r.key: catalog.race_key(source, r.key) for r in snapshot.races}
    candidate_keys = {(c.race, c.key): catalog.candidate_key(source, c.race, c.key)
                      for c in snapshot.candidates}
    # By rank, as resolve stores them: a feed key at two levels maps as it does there.
    unit_keys = {u.key: (unit_key(source, u.level, u.key), LEVEL_RANK[u.level])
                 for u in sorted(snapshot.units, key=lambda u: LEVEL_RANK[u.level])}
    return race_keys, candidate_keys, unit_keys


def _known_all(session: Session, snapshots: list[Snapshot], catalog: Catalog
               ) -> list[Resolved | None]:
    """PostgreSQL: every id of each snapshot, all in one statement; None for a snapshot
    with anything to store first (a new source, race, candidate or unit, or a race's
    first election date)."""
    keys = [_keys(snapshot, catalog) for snapshot in snapshots]
    found: tuple[dict, dict, dict, dict] = ({}, {}, {}, {})
    undated: set[str] = set()
    for kind, key, row_id, election_date in session.execute(PG_KNOWN, {
            "races": sorted({k for races, _, _ in keys for k in races.values()}),
            "candidates": sorted({k for _, candidates, _ in keys for k in candidates.values()}),
            "units": sorted({k for _, _, units in keys for k, _ in units.values()}),
            "sources": sorted({snapshot.source for snapshot in snapshots})}):
        found[kind][key] = row_id
        if kind == 0 and election_date == "":
            undated.add(key)
    races, candidates, units, sources = found
    out: list[Resolved | None] = []
    for snapshot, (race_keys, candidate_keys, unit_keys) in zip(snapshots, keys, strict=True):
        if (snapshot.source not in sources
                or (snapshot.election_date and not undated.isdisjoint(race_keys.values()))
                or not all(key in races for key in race_keys.values())
                or not all(key in candidates for key in candidate_keys.values())
                or not all(key in units for key, _ in unit_keys.values())):
            out.append(None)
            continue
        out.append(Resolved({feed: races[rome] for feed, rome in race_keys.items()},
                            {pair: candidates[rome] for pair, rome in candidate_keys.items()},
                            {feed: (units[key], rank) for feed, (key, rank) in unit_keys.items()}))
    return out


def resolve_all(session: Session, snapshots: list[Snapshot], catalog: Catalog
                ) -> list[Resolved]:
    """resolve, for each snapshot of a batch: on PostgreSQL, the ids of those whose keys
    are all stored in one statement, the others' (storing what is new) one by one."""
    if not snapshots or session.get_bind().dialect.name != "postgresql":
        return [resolve(session, snapshot, catalog) for snapshot in snapshots]
    return [known if known is not None else _store(session, snapshot, catalog)
            for snapshot, known in zip(snapshots, _known_all(session, snapshots, catalog),
                                       strict=True)]


def resolve(session: Session, snapshot: Snapshot, catalog: Catalog) -> Resolved:
    """Map every key of snapshot to Rome's ids, storing what is new."""
    if session.get_bind().dialect.name == "postgresql" and (
            known := _known_all(session, [snapshot], catalog)[0]) is not None:
        return known
    return _store(session, snapshot, catalog)


def _store(session: Session, snapshot: Snapshot, catalog: Catalog) -> Resolved:
    """Map every key of snapshot to Rome's ids, storing what is new, table by table."""
    source = snapshot.source
    ensure_source(session, source, snapshot.format)
    race_keys = {r.key: catalog.race_key(source, r.key) for r in snapshot.races}
    race_ids = _ensure(session, RaceRow.__table__, [
        {"key": race_keys[r.key], "name": r.name, "state": r.state, "office": r.office,
         "election_date": snapshot.election_date}
        for r in snapshot.races
    ])
    races = {feed: race_ids[rome] for feed, rome in race_keys.items()}
    if snapshot.election_date and races:
        # The catalog's races are stored before any feed names their day: the first
        # date a feed gives is kept, and a race's date never changes after that.
        session.execute(
            update(RaceRow)
            .where(RaceRow.id.in_(sorted(set(races.values()))), RaceRow.election_date == "")
            .values(election_date=snapshot.election_date)
        )

    candidate_keys = {
        (c.race, c.key): catalog.candidate_key(source, c.race, c.key) for c in snapshot.candidates
    }
    candidate_ids = _ensure(session, CandidateRow.__table__, [
        {"key": candidate_keys[(c.race, c.key)], "race_id": races[c.race], "first": c.first,
         "last": c.last, "party": c.party}
        for c in snapshot.candidates
    ])
    candidates = {pair: candidate_ids[rome] for pair, rome in candidate_keys.items()}

    # Parents first, so every unit's parent already has an id.
    units: dict[str, tuple[int, int]] = {}
    by_rank: dict[int, list] = {}
    for u in snapshot.units:
        by_rank.setdefault(LEVEL_RANK[u.level], []).append(u)
    for rank in sorted(by_rank):
        level = by_rank[rank]
        ids = _ensure(session, UnitRow.__table__, [
            {"key": unit_key(source, u.level, u.key), "source_id": source, "name": u.name,
             "level": u.level, "rank": rank,
             "parent_id": units[u.parent][0] if u.parent in units else None}
            for u in level
        ])
        for u in level:
            units[u.key] = (ids[unit_key(source, u.level, u.key)], rank)
    return Resolved(races, candidates, units)
