"""Apply snapshots so that, per count, the newest version wins, and keep the tallies in step.

A count's key is (race, source, unit, candidate, vote type). Applying a batch:

- upserts every count into ``current_counts`` only where its version is newer
  (ties broken by the larger figure, so the final state never depends on
  arrival order); an equal or older version is a no-op. A count's version is
  the larger of its row's and its scope's (``count_scopes``, one per race and
  source): a snapshot that names every stored count of a race moves the
  scope's version and rewrites only the counts whose figures differ, so a
  version with 1 % of its figures changed writes about 1 % of the rows. Only
  a late snapshot bringing a count its race's scope has never seen pays for
  the scope's version being written back into the race's counts first;
- appends each change of a figure to ``history`` (a lower figure is a
  correction, kept and counted as one);
- adds each change's delta to ``tallies``, one row per (race, source,
  candidate, vote type, level), so a race's total is read, never summed;
- records each changed total-vote tally's new figure in ``series`` at the
  transaction's apply time, so a race's totals over time are read, never
  summed either (rome/read/history.py).

All in one statement on PostgreSQL (COPY into a staging table, then one
insert-select), in a fixed key order so concurrent batches cannot deadlock.
Every function takes a session and never commits: the caller owns the
transaction.
"""

from __future__ import annotations

import hashlib
import io
from array import array
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, groupby
from operator import attrgetter
from typing import Annotated, NamedTuple, TypedDict

from sqlalchemy import bindparam, delete, func, select, text, tuple_, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from rome.feeds.catalog import Catalog, default_catalog
from rome.feeds.snapshot import TOTAL, Snapshot
from rome.schema import Count, Meta
from rome.store.models import (
    RESULT_TABLES,
    CountScopeRow,
    CurrentRow,
    HistoryRow,
    RaceStatusRow,
    RejectedRow,
    SeriesRow,
    TallyRow,
)
from rome.store.reference import resolve, resolve_all


class Row(NamedTuple):
    """One resolved count, as it is applied: its key, then what is stored under it."""

    race_id: int
    source_id: str
    unit_id: int
    candidate_id: int
    vote_type: str
    rank: int
    votes: int
    version: int
    feed_at: float  # seconds since the epoch


@dataclass(frozen=True)
class RecordResult:
    applied: int  # counts whose stored version moved forward
    changed: int  # of those, counts whose figure changed (history rows)
    corrections: int  # of those, figures that went down
    stale: int  # counts at an equal or older version: no-ops
    races: frozenset[tuple[int, str]] = frozenset()  # (race id, source) the batch touched


SCOPES = CountScopeRow.__table__


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class CountRows(NamedTuple):
    """count_rows' answer."""

    rows: list[Row]  # one per key, key-sorted
    races: set[tuple[int, str]]  # the (race id, source) pairs the snapshots name
    twins: set[tuple[int, str]]  # those of which one snapshot names a count twice


def count_rows(
    session: Session, snapshots: list[Snapshot], catalog: Catalog,
    resolved: list | None = None, unchanged: frozenset[tuple[int, str]] = frozenset(),
    grouped: list[dict[str, list]] | None = None, applied_at: datetime | None = None,
    staged: dict[tuple[int, str], list] | None = None,
) -> CountRows:
    """Resolve every snapshot's keys (or take them resolved); return its counts as rows (one
    per key, key-sorted), leaving out those of the unchanged (race id, source) scopes and,
    of a scope staged names, all but the counts it lists (counts by race in grouped); the
    (race id, source) pairs the snapshots name; and those of them where one snapshot names
    a count twice (two feed keys can name one of Rome's: the larger figure wins)."""
    best: dict[tuple, Row] = {}
    races: set[tuple[int, str]] = set()
    twins: set[tuple[int, str]] = set()
    staged = staged or {}
    every = []
    for i, snapshot in enumerate(snapshots):
        ids = resolved[i] if resolved is not None else resolve(session, snapshot, catalog)
        source = snapshot.source
        only = {key: staged.get((race_id, source)) for key, race_id in ids.races.items()
                if (race_id, source) in unchanged or (race_id, source) in staged}
        counts = snapshot.counts
        if only:
            by_race = grouped[i] if grouped is not None else counts_by_race(snapshot)
            counts = chain.from_iterable(
                listed if race not in only else only[race] or ()
                for race, listed in by_race.items())
        for n in counts:
            unit_id, rank = ids.units[n.unit]
            key = (ids.races[n.race], source, unit_id,
                   ids.candidates[(n.race, n.candidate)], n.vote_type)
            row = Row(*key, rank, n.votes, snapshot.version, snapshot.feed_at)
            old = best.get(key)
            # Within a batch too, the newest version (then the larger figure) wins.
            if old is None or (old.version, old.votes) < (row.version, row.votes):
                best[key] = row
            if old is not None:
                twins.add(key[:2])
        every.append(ids)
        races.update((race_id, source) for race_id in ids.races.values())
    _record_status(session, snapshots, every, applied_at)
    # A fixed key order: two batches touching the same rows lock them in the
    # same order and cannot deadlock each other.
    return CountRows([best[key] for key in sorted(best)], races, twins)


def record_snapshots(
    session: Session, snapshots: list[Snapshot], catalog: Catalog | None = None,
    applied_at: datetime | None = None,
) -> RecordResult:
    """Apply every count that is newer than what is stored; ignore the rest.

    applied_at is when the changes count as applied (the history's and the
    series' time): the database's transaction time unless given.
    """
    catalog = catalog or default_catalog()
    resolved = resolve_all(session, snapshots, catalog)
    grouped = [counts_by_race(snapshot) for snapshot in snapshots]
    digests = scope_digests(snapshots, resolved, grouped)
    named = {(ids.races[race], snapshot.source)
             for snapshot, ids, by_race in zip(snapshots, resolved, grouped, strict=True)
             for race in by_race}
    unchanged, advanced, partial = _skip_unchanged(session, digests, named)
    rows, races, twins = count_rows(
        session, snapshots, catalog, resolved, frozenset(unchanged), grouped, applied_at,
        {scope: counts for scope, (counts, _) in partial.items()})
    skipped = sum(unchanged.values())
    moved = sum(unchanged[scope] for scope in advanced)
    if not rows:
        return RecordResult(moved, 0, 0, skipped - moved, frozenset(races))
    left_out = {scope: counts for scope, (_, counts) in partial.items()}
    # Each applied scope keeps the snapshot's digests where the apply leaves the race's
    # counts exactly as that snapshot says (whole), none where anything else may differ:
    # where a count is named twice, the digests name one stored count twice.
    applied, changed, corrections = apply_rows(
        session, rows, applied_at, left_out,
        {scope: digest for scope, digest in digests.items()
         if scope not in unchanged and scope not in twins}, locked=True)
    # A count left out moved with its scope, as if staged with the same figure.
    moved_too = sum(left_out.values())
    return RecordResult(applied + moved + moved_too, changed, corrections,
                        len(rows) - applied + skipped - moved, frozenset(races))


UNIT, CANDIDATE, VOTE_TYPE, VOTES, RACE = map(attrgetter, (
    "unit", "candidate", "vote_type", "votes", "race"))
KEYS = 8  # bytes of the keys' digest, at the head of Digest.units
VOTE = array("q").itemsize  # bytes of each count's votes after it
CHUNK = 64  # counts whose votes _counts_to_stage compares whole, before count by count


class Digest(NamedTuple):
    """What one snapshot says of one race, digested (scope_digests)."""

    digest: str  # of units: the race's whole figures
    units: bytes  # a digest of the race's count keys in order, then each count's votes
    version: int
    counts: int
    listed: list  # the race's counts, in the snapshot's order


def counts_by_race(snapshot: Snapshot) -> dict[str, list]:
    """The snapshot's counts by race key, in the snapshot's order."""
    grouped: dict[str, list] = {}
    for race, group in groupby(snapshot.counts, RACE):  # feeds list a race's together
        listed = grouped.get(race)
        if listed is None:
            grouped[race] = list(group)
        else:
            listed.extend(group)
    return grouped


def scope_digests(snapshots: list[Snapshot], resolved: list,
                  grouped: list[dict[str, list]]) -> dict[tuple[int, str], Digest]:
    """{(race id, source): Digest} of each race one snapshot of the batch names: a digest of
    its counts' keys (unit, candidate, vote type) in order, then their votes as they are
    (8 bytes a count: compared as they stand, no digest to compute), and the race's
    digest over those.

    Two snapshots with the same digest for a race say the same figures for the same
    counts: a newer one need not be staged, only its version kept. With the same keys in
    the same order, a count with the same votes need not be staged either (_counts_to_stage).
    A race two snapshots of the batch name gets none, nor one with votes past 2**63."""
    out: dict[tuple[int, str], Digest] = {}
    undigested: set[tuple[int, str]] = set()
    for snapshot, ids, by_race in zip(snapshots, resolved, grouped, strict=True):
        for race, counts in by_race.items():
            scope = (ids.races[race], snapshot.source)
            if scope in out:
                undigested.add(scope)
            try:
                votes = array("q", map(VOTES, counts)).tobytes()
            except OverflowError:
                undigested.add(scope)
                continue
            # Keys hold no NUL (Snapshot.validate): joined by NULs, they read back one way.
            # One that does (a snapshot not validated) gets no digest.
            named = "\0".join(chain(map(UNIT, counts), map(CANDIDATE, counts),
                                    map(VOTE_TYPE, counts)))
            if named.count("\0") != 3 * len(counts) - 1:
                undigested.add(scope)
                continue
            keys = hashlib.blake2b(named.encode("utf-8", "surrogatepass"),
                                   digest_size=KEYS).digest()
            out[scope] = Digest(hashlib.blake2b(keys + votes, digest_size=16).hexdigest(),
                                keys + votes, snapshot.version, len(counts), counts)
    for scope in undigested:
        out.pop(scope, None)
    return out


def _counts_to_stage(new: Digest, stored: bytes | None) -> tuple[list, int]:
    """The counts of a newer snapshot of a race whose votes are not those stored, in order,
    and how many are left out; ([], 0) unless the snapshot names the stored counts' keys in
    the same order, so that with them the batch names every stored count and its scope
    moves (PLAN_TEMPLATE). Votes are compared CHUNK counts at a time first, count by count
    only where they differ. (A scope keeps no digests where a count is named twice:
    record_snapshots.)"""
    if not stored or len(stored) != len(new.units):
        return [], 0
    stored = bytes(stored)  # psycopg2 hands a memoryview of chars: unequal to any bytes
    if stored[:KEYS] != new.units[:KEYS]:
        return [], 0
    staged: list = []
    listed = new.listed
    for first in range(0, len(listed), CHUNK):
        at, end = KEYS + first * VOTE, KEYS + min(first + CHUNK, len(listed)) * VOTE
        if stored[at:end] != new.units[at:end]:
            old, now = array("q", stored[at:end]), array("q", new.units[at:end])
            staged.extend(n for n, a, b in zip(listed[first:first + CHUNK], old, now,
                                               strict=True) if a != b)
    return staged, new.counts - len(staged)


def _skip_unchanged(session: Session, digests: dict[tuple[int, str], Digest],
                    named: set[tuple[int, str]] = frozenset()
                    ) -> tuple[dict[tuple[int, str], int], set[tuple[int, str]],
                               dict[tuple[int, str], tuple[list, int]]]:
    """Lock the batch's scopes (those with digests and those named: on PostgreSQL, in key
    order, as the apply does, which then need not) and find those whose stored digest is
    the snapshot's: return them with their counts, those whose version moved, and per other
    scope the counts that must be staged and how many need not (_counts_to_stage).

    A scope keeps digests only while its counts are exactly what a whole snapshot with
    those digests left (record_snapshots): the same figures again change no count, so only
    the scope's version moves, under the lock, so no other batch of the race slips between."""
    if session.get_bind().dialect.name == "postgresql":
        stored = _lock_scopes(session, digests, sorted(named | digests.keys()))
    elif not digests:
        return {}, set(), {}
    else:
        scopes = sorted(digests)
        session.execute(sqlite.insert(SCOPES).on_conflict_do_nothing(),
                        [{"race_id": race, "source_id": source, "version": 0}
                         for race, source in scopes])
        stored = {}
        for start in range(0, len(scopes), 500):
            chunk = scopes[start:start + 500]
            stored.update({(race, source): (version, digest, units)
                           for race, source, version, digest, units in session.execute(select(
                SCOPES.c.race_id, SCOPES.c.source_id, SCOPES.c.version, SCOPES.c.digest,
                SCOPES.c.unit_digests)
                .where(tuple_(SCOPES.c.race_id, SCOPES.c.source_id).in_(chunk)))})
    unchanged = {scope: new.counts for scope, new in digests.items()
                 if stored[scope][1] == new.digest}
    advanced = {scope for scope in unchanged if digests[scope].version > stored[scope][0]}
    _set_versions(session, {scope: digests[scope].version for scope in advanced})
    # Counts stored as whole-snapshot figures only count while the race's digest stands.
    partial = {scope: left for scope, new in digests.items()
               if scope not in unchanged and stored[scope][1] is not None
               and new.version > stored[scope][0]
               and (left := _counts_to_stage(new, stored[scope][2]))[1]}
    return unchanged, advanced, partial


def _lock_scopes(session: Session, digests: dict[tuple[int, str], Digest],
                 scopes: list[tuple[int, str]]) -> dict[tuple[int, str], tuple]:
    """PostgreSQL: lock the scopes (sorted), making those not there yet; return each one's
    (version, digest, per-count digests where its digest is not the batch's).

    Most batches name only scopes that are there: they are locked in one statement, inside
    a savepoint. If some are missing, rolling back to it lets those locks go before the
    missing are made (in key order) and all are locked again: a batch never waits to make
    a scope while holding another's lock, so two batches making scopes cannot deadlock."""
    if not scopes:
        return {}
    # Arrays, one statement each: an executemany is a round trip per race.
    keys = {"races": [race for race, _ in scopes], "sources": [source for _, source in scopes],
            "digests": [digests[scope].digest if scope in digests else None
                        for scope in scopes]}
    stored = {(race, source): rest for race, source, *rest in
              session.execute(text("SAVEPOINT rome_scopes;" + PG_SCOPES["lock"]), keys)}
    if len(stored) == len(scopes):
        # The locks stay, the transaction's own: what it writes next carries its id.
        session.execute(text("RELEASE SAVEPOINT rome_scopes"))
        return stored
    session.execute(text("ROLLBACK TO SAVEPOINT rome_scopes; RELEASE SAVEPOINT rome_scopes;"
                         + PG_SCOPES["ensure"]), keys)
    return {(race, source): rest for race, source, *rest in
            session.execute(text(PG_SCOPES["lock"]), keys)}


# PostgreSQL's scope statements, on arrays of race ids and sources (and values).
PG_SCOPES = {
    "ensure": """
INSERT INTO count_scopes (race_id, source_id, version)
SELECT race_id, source_id, 0 FROM unnest(:races ::integer[], :sources ::text[])
    AS u(race_id, source_id)
ORDER BY race_id, source_id ON CONFLICT (race_id, source_id) DO NOTHING""",
    # In key order, as the apply locks them: no two batches deadlock.
    # The digests per count only where the race's digest is not the snapshot's: the same
    # figures again need none of them read.
    "lock": """
SELECT s.race_id, s.source_id, s.version, s.digest,
       CASE WHEN s.digest <> u.digest THEN s.unit_digests END
FROM count_scopes s
JOIN unnest(:races ::integer[], :sources ::text[], :digests ::text[])
    AS u(race_id, source_id, digest) USING (race_id, source_id)
ORDER BY s.race_id, s.source_id FOR UPDATE OF s""",
    "version": """
UPDATE count_scopes s SET version = u.value
FROM unnest(:races ::integer[], :sources ::text[], :values ::bigint[])
    AS u(race_id, source_id, value)
WHERE s.race_id = u.race_id AND s.source_id = u.source_id""",
}


def _set_digests(session: Session, values: dict[tuple[int, str], Digest | None]) -> None:
    """Keep each scope's digests named, or forget them (None): the portable path's share of
    what APPLY_TEMPLATE does on PostgreSQL."""
    if not values:
        return
    scopes = sorted(values)
    session.execute(
        update(SCOPES).where(SCOPES.c.race_id == bindparam("race"),
                             SCOPES.c.source_id == bindparam("source"))
        .values(digest=bindparam("digest"), unit_digests=bindparam("units")),
        [{"race": race, "source": source,
          "digest": values[(race, source)].digest if values[(race, source)] else None,
          "units": values[(race, source)].units if values[(race, source)] else None}
         for race, source in scopes])


def _set_versions(session: Session, values: dict[tuple[int, str], int]) -> None:
    """Move each scope named to its version."""
    if not values:
        return
    scopes = sorted(values)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(PG_SCOPES["version"]), {
            "races": [race for race, _ in scopes], "sources": [source for _, source in scopes],
            "values": [values[scope] for scope in scopes]})
        return
    session.execute(
        update(SCOPES).where(SCOPES.c.race_id == bindparam("race"),
                             SCOPES.c.source_id == bindparam("source"))
        .values(version=bindparam("value")),
        [{"race": race, "source": source, "value": values[(race, source)]}
         for race, source in scopes])


def apply_rows(session: Session, rows: list[Row], applied_at: datetime | None = None,
               left_out: dict[tuple[int, str], int] | None = None,
               digests: dict[tuple[int, str], Digest] | None = None,
               locked: bool = False) -> tuple[int, int, int]:
    """Apply resolved, key-sorted count rows; return (applied, changed, corrections). The
    scopes whose counts are now exactly the rows' (whole: see PLAN_TEMPLATE) keep their
    digests (from digests); every other scope of the rows forgets its own. left_out:
    per scope, how many stored counts whose figures the rows leave out
    (record_snapshots). locked: the transaction has made and locked every scope of the
    rows already (_skip_unchanged), so the apply need not."""
    if session.get_bind().dialect.name == "postgresql":
        return _apply_copy(session, rows, applied_at, left_out, digests, locked)
    return _apply_portable(session, rows, applied_at, left_out, digests)


def _record_status(session: Session, snapshots: list[Snapshot], resolved: list,
                   applied_at: datetime | None = None) -> None:
    """Store what each snapshot says of each race as a whole, where it is newer: one
    statement for the batch."""
    now = applied_at or datetime.now(UTC)
    newest: dict[tuple[int, str], tuple[int, dict]] = {}
    for i, (snapshot, ids) in enumerate(zip(snapshots, resolved, strict=True)):
        statuses = {s.race: s for s in snapshot.statuses}
        for race in snapshot.races:
            status = statuses.get(race.key)
            winner = status.winner if status else None
            key = (ids.races[race.key], snapshot.source)
            # One row per race id and source: two feed keys of a snapshot can name one race
            # (the last is kept), and so can two snapshots of a batch (the newer is kept,
            # the first of equals, as a statement a snapshot kept it: a row moves only to a
            # newer version).
            if key in newest and newest[key][0] != i and (
                    newest[key][1]["version"] >= snapshot.version):
                continue
            newest[key] = (i, {
                "race_id": key[0],
                "source_id": snapshot.source,
                "version": snapshot.version,
                "feed_at": _utc(snapshot.feed_at),
                "precincts_reporting": status.precincts_reporting if status else None,
                "precincts_total": status.precincts_total if status else None,
                "winner_id": ids.candidates[(race.key, winner)] if winner else None,
                "test": snapshot.test,
            })
    values = [newest[key][1] for key in sorted(newest)]
    if not values:
        return
    if session.get_bind().dialect.name == "postgresql":
        # One statement on arrays: an executemany is a round trip per race.
        # Its time is the tallies' (the transaction's, or applied_at): a report heard
        # with no figure changed is heard at the time a changed one would be.
        session.execute(text(PG_STATUS), {**{name: [v[name] for v in values]
                                             for name in values[0]}, "applied_at": applied_at})
        return
    for v in values:
        v["updated_at"] = now
    table = RaceStatusRow.__table__
    stmt = sqlite.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["race_id", "source_id"],
        set_={name: stmt.excluded[name] for name in values[0] if name not in
              ("race_id", "source_id")},
        where=table.c.version < stmt.excluded.version,
    )
    session.execute(stmt, values)


PG_STATUS = """
INSERT INTO race_status AS r (race_id, source_id, version, feed_at, precincts_reporting,
                              precincts_total, winner_id, test, updated_at)
SELECT *, coalesce(CAST(:applied_at AS timestamptz), now())
FROM unnest(:race_id ::integer[], :source_id ::text[], :version ::bigint[],
            :feed_at ::timestamptz[], :precincts_reporting ::integer[],
            :precincts_total ::integer[], :winner_id ::integer[], :test ::boolean[])
ON CONFLICT (race_id, source_id) DO UPDATE
SET version = excluded.version, feed_at = excluded.feed_at,
    precincts_reporting = excluded.precincts_reporting,
    precincts_total = excluded.precincts_total, winner_id = excluded.winner_id,
    test = excluded.test, updated_at = excluded.updated_at
WHERE r.version < excluded.version
"""

# JIT off for the batch: the stage is never analyzed, so its estimates cross
# jit_above_cost and each statement paid ~25 ms compiling for ~70 ms of work.
# Emptied each time: an earlier batch of the transaction may have used them.
STAGE_TEMPLATE = """
SET LOCAL jit = off;
CREATE TEMP TABLE IF NOT EXISTS {stage} (
    race_id integer, source_id text, unit_id integer, candidate_id integer, vote_type text,
    rank smallint, votes bigint, version bigint, feed_at double precision
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS {plan} (
    race_id integer, source_id text, floor bigint, version bigint, complete boolean,
    whole boolean
) ON COMMIT DELETE ROWS;
DELETE FROM {stage}; DELETE FROM {plan}
"""

# Before the apply, per race and source the batch touches (its scope), in key
# order so concurrent batches cannot deadlock: the scope's row, locked, so
# batches of one race apply one after the other. The statements after this one
# each read a fresh snapshot (READ COMMITTED, the default), so they see what
# the batch waited for committed.
LOCK_SCOPES_TEMPLATE = """
INSERT INTO {scopes} (race_id, source_id, version)
SELECT DISTINCT race_id, source_id, 0 FROM {stage} ORDER BY race_id, source_id
ON CONFLICT (race_id, source_id) DO NOTHING;
SELECT 1 FROM {scopes} s WHERE (s.race_id, s.source_id) IN
    (SELECT race_id, source_id FROM {stage}) ORDER BY s.race_id, s.source_id FOR UPDATE OF s
"""

# A staged count its scope has never seen, older than the scope: the scope's
# version does not cover it, so the scope's version goes back into each of its
# counts' rows (the one costly case, rare: a late snapshot with a new count).
LATE_TEMPLATE = """
WITH late AS (
    SELECT DISTINCT st.race_id, st.source_id FROM {stage} st
    JOIN {scopes} s USING (race_id, source_id)
    WHERE st.version < s.version AND NOT EXISTS (
        SELECT 1 FROM {current} c WHERE (c.race_id, c.source_id, c.unit_id, c.candidate_id,
            c.vote_type) = (st.race_id, st.source_id, st.unit_id, st.candidate_id, st.vote_type))
), bumped AS (
    UPDATE {current} c SET version = s.version FROM {scopes} s JOIN late USING (race_id, source_id)
    WHERE c.race_id = s.race_id AND c.source_id = s.source_id AND c.version < s.version
    RETURNING 1
)
UPDATE {scopes} s SET version = 0 FROM late
WHERE s.race_id = late.race_id AND s.source_id = late.source_id
"""

# Each scope's floor (its version now) and whether the batch names every count
# it holds, all at one newer version: then the scope moves to that version
# and unchanged counts stay as they are. Whole: complete, and no stored count
# is at that version or newer, so after the apply the race's counts are
# exactly the batch's (its digest may be kept: record_snapshots). Counts whose figures
# the scope's digests already hold were left out of the stage (record_snapshots): their
# stored counts count as named. How many counts a scope holds is its row's to say (the
# apply keeps it): counting them here cost a scan of each race's counts, every batch.
PLAN_TEMPLATE = """
INSERT INTO {plan} (race_id, source_id, floor, version, complete, whole)
SELECT race_id, source_id, floor, version, complete, complete AND newest < version
FROM (
    SELECT st.race_id, st.source_id, s.version AS floor, max(st.version) AS version,
           min(st.version) = max(st.version) AND max(st.version) > s.version
           AND count(c.race_id) + coalesce(max(o.counts), 0) = s.counts
           AS complete,
           coalesce(max(c.version), 0) AS newest
    FROM {stage} st JOIN {scopes} s USING (race_id, source_id)
    LEFT JOIN {current} c USING (race_id, source_id, unit_id, candidate_id, vote_type)
    LEFT JOIN {left_out} USING (race_id, source_id)
    GROUP BY st.race_id, st.source_id, s.version, s.counts
) planned
"""

# The scopes with counts left out of the stage that did not move: none, unless a scope's
# digests were wrong (the left-out counts would keep an old version: refused).
UNMOVED_TEMPLATE = """
SELECT o.race_id, o.source_id FROM {left_out} LEFT JOIN {plan} p USING (race_id, source_id)
WHERE p.complete IS NOT TRUE
"""
# Per scope, the stored counts record_snapshots left out of the stage: their
# figures are the batch's (their digests matched), so they count as named.
LEFT_OUT = ("unnest(%(out_races)s::integer[], %(out_sources)s::text[], "
            "%(out_counts)s::bigint[]) AS o(race_id, source_id, counts)")


def _upsert_tallies(where: str, returning: str) -> str:
    """The apply's upsert of the sums where `where` holds into the tallies."""
    return f"""INSERT INTO {{tallies}} AS t (race_id, source_id, candidate_id, vote_type, rank,
                                votes, units, changes, corrections, last_update_at)
    SELECT race_id, source_id, candidate_id, vote_type, rank, delta, units, changes,
           corrections, at
    FROM sums WHERE {where}
    ORDER BY race_id, source_id, candidate_id, vote_type, rank
    ON CONFLICT (race_id, source_id, candidate_id, vote_type, rank) DO UPDATE
    SET votes = t.votes + excluded.votes, units = t.units + excluded.units,
        changes = t.changes + excluded.changes,
        corrections = t.corrections + excluded.corrections,
        last_update_at = greatest(t.last_update_at, excluded.last_update_at)
    RETURNING {returning}"""


# One statement. The upsert moves only counts whose version is newer and hands
# the rows it changed, with what they said before, to the history insert and
# to the tally upserts, so only real changes are added, each once; the upsert
# of the total-vote tallies that changed hands their new figures to the series
# (two upserts on disjoint rows, so the series needs no join of one query's
# results to another's: such a join of two CTEs, estimated at a row each, was
# a nested loop, quadratic in the tallies: 7 s for 6,000). A tally's time never
# goes back: a batch that began before another but reached the row after it (it waited
# for its lock) is stamped with the other's time, so the series follows the
# order in which figures were committed and its newest row is the tally.
APPLY_TEMPLATE = """
WITH wanted AS (
    SELECT st.*, p.complete AND st.votes = c.votes AS same
    FROM {stage} st JOIN {plan} p USING (race_id, source_id)
    LEFT JOIN {current} c USING (race_id, source_id, unit_id, candidate_id, vote_type)
    WHERE c.race_id IS NULL OR (greatest(c.version, p.floor), c.votes) < (st.version, st.votes)
), changed AS (
    INSERT INTO {current} AS c (race_id, source_id, unit_id, candidate_id, vote_type, rank,
                                votes, prev_votes, version, feed_at, applied_at)
    SELECT race_id, source_id, unit_id, candidate_id, vote_type, rank, votes, NULL, version,
           to_timestamp(feed_at), coalesce(%(applied_at)s::timestamptz, now())
    FROM wanted WHERE same IS NOT TRUE
    ORDER BY race_id, source_id, unit_id, candidate_id, vote_type
    ON CONFLICT (race_id, source_id, unit_id, candidate_id, vote_type) DO UPDATE
    SET prev_votes = c.votes, votes = excluded.votes, version = excluded.version,
        feed_at = excluded.feed_at, applied_at = excluded.applied_at
    WHERE (c.version, c.votes) < (excluded.version, excluded.votes)
    RETURNING race_id, source_id, unit_id, candidate_id, vote_type, rank, votes, prev_votes,
              version, feed_at, applied_at
), advanced AS (
    -- Each complete scope moves to the batch's version; each keeps the digests given
    -- for it if the batch leaves it whole, none otherwise (record_snapshots); each
    -- counts the counts the batch added (an upsert that inserted has no prev_votes).
    UPDATE {scopes} s
    SET version = CASE WHEN p.complete THEN p.version ELSE s.version END,
        digest = CASE WHEN p.whole THEN d.digest END,
        unit_digests = CASE WHEN p.whole THEN d.units END,
        counts = s.counts + coalesce(a.added, 0)
    FROM {plan} p LEFT JOIN unnest(%(d_races)s::integer[], %(d_sources)s::text[],
                                   %(d_digests)s::text[], %(d_units)s::bytea[])
        AS d(race_id, source_id, digest, units) USING (race_id, source_id)
    LEFT JOIN (SELECT race_id, source_id, count(*) AS added FROM changed
               WHERE prev_votes IS NULL GROUP BY race_id, source_id) a
        USING (race_id, source_id)
    WHERE s.race_id = p.race_id AND s.source_id = p.source_id
        AND (p.complete OR s.digest IS NOT NULL OR a.added IS NOT NULL)
    RETURNING 1
), appended AS (
    INSERT INTO {history} (race_id, source_id, unit_id, candidate_id, vote_type, rank, version,
                           votes, delta, feed_at, applied_at)
    SELECT race_id, source_id, unit_id, candidate_id, vote_type, rank, version, votes,
           votes - coalesce(prev_votes, 0), feed_at, applied_at
    FROM changed WHERE prev_votes IS DISTINCT FROM votes
    RETURNING 1
), sums AS (
    SELECT race_id, source_id, candidate_id, vote_type, rank,
           sum(votes - coalesce(prev_votes, 0)) AS delta,
           count(*) FILTER (WHERE prev_votes IS NULL) AS units,
           count(*) FILTER (WHERE prev_votes IS DISTINCT FROM votes) AS changes,
           count(*) FILTER (WHERE votes < prev_votes) AS corrections,
           max(applied_at) AS at
    FROM changed GROUP BY race_id, source_id, candidate_id, vote_type, rank
), tallied AS (
    {tallied}
), charting AS (
    {charting}
), charted AS (
    INSERT INTO {series} AS s (race_id, source_id, rank, candidate_id, at, votes)
    SELECT race_id, source_id, rank, candidate_id,
           CAST(EXTRACT(epoch FROM last_update_at) AS DOUBLE PRECISION), votes
    FROM charting ORDER BY race_id, source_id, rank, candidate_id
    ON CONFLICT (race_id, source_id, rank, candidate_id, at) DO UPDATE SET votes = excluded.votes
    RETURNING 1
)
SELECT (SELECT count(*) FROM wanted), coalesce(sum(changes), 0), coalesce(sum(corrections), 0)
FROM sums
""".replace("{tallied}", _upsert_tallies("vote_type <> '{total}' OR changes = 0", "1")).replace(
    "{charting}", _upsert_tallies("vote_type = '{total}' AND changes > 0",
                                  "race_id, source_id, candidate_id, rank, votes, last_update_at"))

TABLES = {"current": "current_counts", "history": "history", "tallies": "tallies",
          "series": "series", "stage": "count_stage", "total": TOTAL, "scopes": "count_scopes",
          "plan": "scope_plan"}


def statements(tables: dict[str, str]) -> dict[str, str]:
    """The staging and apply statements on the tables named (scratch copies, for benchmarks)."""
    return {name: template.format(**tables, left_out=LEFT_OUT) for name, template in (
        ("stage", STAGE_TEMPLATE), ("lock", LOCK_SCOPES_TEMPLATE), ("late", LATE_TEMPLATE),
        ("plan", PLAN_TEMPLATE), ("apply", APPLY_TEMPLATE), ("unmoved", UNMOVED_TEMPLATE))}


SQL = statements(TABLES)
STAGE, APPLY_STAGE = SQL["stage"], SQL["apply"]


def copy_text(rows: list[Row]) -> str:
    """Render count rows as the staging table's COPY text."""
    return "".join(
        f"{race_id}\t{source_id}\t{unit_id}\t{candidate_id}\t{vote_type}\t{rank}\t{votes}\t"
        f"{version}\t{feed_at!r}\n"
        for race_id, source_id, unit_id, candidate_id, vote_type, rank, votes, version, feed_at
        in rows
    )


def plan_scopes(cursor, sql: dict[str, str] = SQL,
                left_out: dict[tuple[int, str], int] | None = None, locked: bool = False) -> None:
    """With the batch staged: lock its scopes (unless locked already), cover late new counts,
    plan each scope (the stored counts left out of the stage, per scope, counting as
    named). One round trip: the statements go together."""
    scopes = sorted(left_out or {})
    arrays = {"out_races": [race for race, _ in scopes],
              "out_sources": [source for _, source in scopes],
              "out_counts": [left_out[scope] for scope in scopes] if left_out else []}
    cursor.execute(";".join(([] if locked else [sql["lock"]]) + [sql["late"], sql["plan"]]
                            + ([sql["unmoved"]] if scopes else [])), arrays)
    if scopes and (unmoved := cursor.fetchall()):
        refuse_unmoved(unmoved)


def refuse_unmoved(scopes: list) -> None:
    """Raise: counts were left out of the stage for scopes that do not move, so their counts
    would keep an older version than the batch gave them."""
    raise RuntimeError(f"scopes {scopes[:5]} left counts out of the stage by their digests "
                       "but do not move: the digests are not the counts'")


def apply_params(applied_at: datetime | None = None,
                 digests: dict[tuple[int, str], Digest] | None = None) -> dict:
    """The apply statement's parameters: its time, and the digests a scope keeps if whole."""
    scopes = sorted(digests or {})
    return {"applied_at": applied_at,
            "d_races": [race for race, _ in scopes], "d_sources": [source for _, source in scopes],
            "d_digests": [digests[scope].digest for scope in scopes] if digests else [],
            "d_units": [digests[scope].units for scope in scopes] if digests else []}


def apply_staged(cursor, applied_at: datetime | None = None, sql: dict[str, str] = SQL,
                 left_out: dict[tuple[int, str], int] | None = None,
                 digests: dict[tuple[int, str], Digest] | None = None,
                 locked: bool = False) -> tuple[int, int, int]:
    """Apply the staged batch; return (applied, changed, corrections). Each scope the batch
    leaves whole keeps its digests (from digests: none if not given). locked: as for
    apply_rows."""
    plan_scopes(cursor, sql, left_out, locked)
    cursor.execute(sql["apply"], apply_params(applied_at, digests))
    applied, changed, corrections = cursor.fetchone()
    return int(applied), int(changed), int(corrections)


def _apply_copy(session: Session, rows: list[Row], applied_at: datetime | None = None,
                left_out: dict[tuple[int, str], int] | None = None,
                digests: dict[tuple[int, str], Digest] | None = None,
                locked: bool = False) -> tuple[int, int, int]:
    """PostgreSQL: COPY the batch into a staging table, then one insert-select."""
    connection = session.connection()
    dbapi = connection.connection.dbapi_connection
    cursor = None
    try:
        cursor = dbapi.cursor()
        # Every time, not once per connection: a rolled-back transaction takes
        # the table it created with it.
        cursor.execute(STAGE)
        cursor.copy_expert(f"COPY {TABLES['stage']} FROM STDIN", io.StringIO(copy_text(rows)))
        return apply_staged(cursor, applied_at, left_out=left_out, digests=digests,
                            locked=locked)
    except connection.dialect.loaded_dbapi.Error as exc:
        # Raw cursor errors arrive unwrapped: wrap them as SQLAlchemy does, and
        # drop a dead connection from the pool, so callers see the same errors
        # (and the same recovery) as on any other statement.
        lost = connection.dialect.is_disconnect(exc, dbapi, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            "COPY count_stage / apply", None, exc, connection.dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
        ) from exc
    finally:
        if cursor is not None and not cursor.closed:
            cursor.close()


def _apply_portable(session: Session, rows: list[Row], applied_at: datetime | None = None,
                    left_out: dict[tuple[int, str], int] | None = None,
                    digests: dict[tuple[int, str], Digest] | None = None
                    ) -> tuple[int, int, int]:
    """Any other database (SQLite): the same steps, each upsert returning what it changed."""
    rows, applied, advance, whole = _plan_portable(session, rows, left_out or {})
    _, changed, corrections, added = _write_portable(session, rows, applied_at)
    for (race_id, source_id), version in sorted(advance.items()):
        session.execute(update(CountScopeRow).where(
            CountScopeRow.race_id == race_id, CountScopeRow.source_id == source_id,
        ).values(version=version))
    for (race_id, source_id), count in sorted(added.items()):
        session.execute(update(CountScopeRow).where(
            CountScopeRow.race_id == race_id, CountScopeRow.source_id == source_id,
        ).values(counts=CountScopeRow.counts + count))
    digests = digests or {}
    _set_digests(session, {scope: digests.get(scope) if scope in whole else None
                           for scope in {r[:2] for r in rows}})
    return applied, changed, corrections


def _plan_portable(session: Session, rows: list[Row], left_out: dict[tuple[int, str], int]
                   ) -> tuple[list[Row], int, dict[tuple[int, str], int], set[tuple[int, str]]]:
    """As the lock, late and plan statements do: return the rows to write, how many counts move
    forward, the scopes to move to a new version, and those of them left whole."""
    scopes = sorted({(r.race_id, r.source_id) for r in rows})
    stmt = sqlite.insert(CountScopeRow).on_conflict_do_nothing()
    for start in range(0, len(scopes), 500):
        session.execute(stmt.values([{"race_id": race, "source_id": source, "version": 0}
                                     for race, source in scopes[start:start + 500]]))
    floors: dict[tuple[int, str], int] = {}
    stored: dict[tuple, tuple[int, int]] = {}
    held: dict[tuple[int, str], int] = {}  # the counts each scope holds, as its row says
    for race, source in scopes:
        floors[(race, source)], held[(race, source)] = session.execute(select(
            CountScopeRow.version, CountScopeRow.counts).where(
            CountScopeRow.race_id == race, CountScopeRow.source_id == source)).one()
        for key in session.execute(select(
            CurrentRow.race_id, CurrentRow.source_id, CurrentRow.unit_id, CurrentRow.candidate_id,
            CurrentRow.vote_type, CurrentRow.version, CurrentRow.votes,
        ).where(CurrentRow.race_id == race, CurrentRow.source_id == source)):
            stored[tuple(key[:5])] = (key.version, key.votes)
    late = {r[:2] for r in rows if r[:5] not in stored and r.version < floors[r[:2]]}
    for scope in sorted(late):
        race, source = scope
        mine = (CurrentRow.race_id == race, CurrentRow.source_id == source)
        session.execute(update(CurrentRow).where(
            *mine, CurrentRow.version < floors[scope]).values(version=floors[scope]))
        session.execute(update(CountScopeRow).where(
            CountScopeRow.race_id == race, CountScopeRow.source_id == source).values(version=0))
        for key, (version, votes) in stored.items():
            if key[:2] == scope:
                stored[key] = (max(version, floors[scope]), votes)
        floors[scope] = 0
    versions: dict[tuple[int, str], set[int]] = defaultdict(set)
    matched: dict[tuple[int, str], int] = defaultdict(int)
    for r in rows:
        versions[r[:2]].add(r.version)
        matched[r[:2]] += r[:5] in stored
    advance = {scope: max(v) for scope, v in versions.items()
               if len(v) == 1 and max(v) > floors[scope]
               and matched[scope] + left_out.get(scope, 0) == held[scope]}
    if unmoved := sorted(set(left_out) - set(advance)):
        refuse_unmoved(unmoved)
    wanted = [r for r in rows if r[:5] not in stored
              or (max(stored[r[:5]][0], floors[r[:2]]), stored[r[:5]][1]) < (r.version, r.votes)]
    write = [r for r in wanted if r[:2] not in advance or r[:5] not in stored
             or stored[r[:5]][1] != r.votes]
    whole = {scope for scope, version in advance.items()
             if all(v < version for key, (v, _) in stored.items() if key[:2] == scope)}
    return write, len(wanted), advance, whole


def _write_portable(session: Session, rows: list[Row], applied_at: datetime | None = None
                    ) -> tuple[int, int, int, dict[tuple[int, str], int]]:
    """Upsert rows, append their history, add them to the tallies; return (applied, changed,
    corrections, {scope: counts added})."""
    now = applied_at or datetime.now(UTC)
    # SQLite's date functions keep milliseconds: store no finer, so a time and
    # the series' number for it (computed by SQLite) compare alike.
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    stmt = sqlite.insert(CurrentRow)
    stmt = stmt.on_conflict_do_update(
        index_elements=["race_id", "source_id", "unit_id", "candidate_id", "vote_type"],
        set_={
            "prev_votes": CurrentRow.votes,
            "votes": stmt.excluded.votes,
            "version": stmt.excluded.version,
            "feed_at": stmt.excluded.feed_at,
            "applied_at": stmt.excluded.applied_at,
        },
        where=tuple_(CurrentRow.version, CurrentRow.votes)
        < tuple_(stmt.excluded.version, stmt.excluded.votes),
    ).returning(
        CurrentRow.race_id, CurrentRow.source_id, CurrentRow.unit_id, CurrentRow.candidate_id,
        CurrentRow.vote_type, CurrentRow.rank, CurrentRow.votes, CurrentRow.prev_votes,
        CurrentRow.version, CurrentRow.feed_at,
    )
    changed_rows = []
    for start in range(0, len(rows), 1000):  # well within SQLite's variable limit
        values = [
            {"race_id": race_id, "source_id": source_id, "unit_id": unit_id,
             "candidate_id": candidate_id, "vote_type": vote_type, "rank": rank, "votes": votes,
             "prev_votes": None, "version": version, "feed_at": _utc(feed_at), "applied_at": now}
            for race_id, source_id, unit_id, candidate_id, vote_type, rank, votes, version, feed_at
            in rows[start:start + 1000]
        ]
        changed_rows += session.execute(stmt.values(values)).all()
    history = []
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    added: dict[tuple[int, str], int] = defaultdict(int)
    for race, source, unit, candidate, vote_type, rank, votes, prev, version, feed_at in (
        changed_rows
    ):
        total = sums[(race, source, candidate, vote_type, rank)]
        total[0] += votes - (prev or 0)
        total[1] += prev is None
        added[(race, source)] += prev is None
        if prev != votes:
            total[2] += 1
            total[3] += prev is not None and votes < prev
            history.append({
                "race_id": race, "source_id": source, "unit_id": unit, "candidate_id": candidate,
                "vote_type": vote_type, "rank": rank, "version": version, "votes": votes,
                "delta": votes - (prev or 0), "feed_at": feed_at, "applied_at": now,
            })
    if history:
        session.execute(sqlite.insert(HistoryRow), history)
    if sums:
        _tally_portable(session, sums, now)
    changed = sum(v[2] for v in sums.values())
    corrections = sum(v[3] for v in sums.values())
    return len(changed_rows), changed, corrections, {k: v for k, v in added.items() if v}


def _tally_portable(session: Session, sums: dict[tuple, list[int]], now: datetime) -> None:
    """Add sums to the tallies and chart the total-vote ones that changed, as APPLY does."""
    tally = sqlite.insert(TallyRow)
    tally = tally.on_conflict_do_update(
        index_elements=["race_id", "source_id", "candidate_id", "vote_type", "rank"],
        set_={
            "votes": TallyRow.votes + tally.excluded.votes,
            "units": TallyRow.units + tally.excluded.units,
            "changes": TallyRow.changes + tally.excluded.changes,
            "corrections": TallyRow.corrections + tally.excluded.corrections,
            # SQLite's two-argument max(); the stored texts sort as the times do.
            "last_update_at": func.max(TallyRow.last_update_at, tally.excluded.last_update_at),
        },
    ).returning(
        TallyRow.race_id, TallyRow.source_id, TallyRow.candidate_id, TallyRow.vote_type,
        TallyRow.rank, TallyRow.votes, sqlite_epoch(TallyRow.last_update_at),
    )
    items = sorted(sums.items())
    points = []
    for start in range(0, len(items), 500):
        values = [
            {"race_id": k[0], "source_id": k[1], "candidate_id": k[2], "vote_type": k[3],
             "rank": k[4], "votes": v[0], "units": v[1], "changes": v[2], "corrections": v[3],
             "last_update_at": now}
            for k, v in items[start:start + 500]
        ]
        for race, source, candidate, vote_type, rank, votes, at in session.execute(
            tally.values(values)
        ):
            if vote_type == TOTAL and sums[(race, source, candidate, vote_type, rank)][2]:
                points.append({"race_id": race, "source_id": source, "rank": rank,
                               "candidate_id": candidate, "at": at, "votes": votes})
    if points:
        series = sqlite.insert(SeriesRow)
        series = series.on_conflict_do_update(
            index_elements=["race_id", "source_id", "rank", "candidate_id", "at"],
            set_={"votes": series.excluded.votes},
        )
        points.sort(key=lambda p: (p["race_id"], p["source_id"], p["rank"], p["candidate_id"]))
        for start in range(0, len(points), 1000):
            session.execute(series.values(points[start:start + 1000]))


def sqlite_epoch(column):
    """Return SQLite's seconds since 1970 of a stored time, to the millisecond."""
    # julianday is a float of days: round off its noise, or 20:00:10 may come
    # back as 20:00:09.9999998 and fall into the bucket before.
    return func.round((func.julianday(column) - 2440587.5) * 86400.0, 3)


def payload_text(body: object) -> str:
    """Turn a rejected payload into text a column can hold, cut at 1.1 MB."""
    if isinstance(body, bytes):
        text_body = body.decode("utf-8", errors="backslashreplace")
    elif isinstance(body, str):
        text_body = body
    else:
        text_body = repr(body)
    # PostgreSQL text cannot hold NUL; keep it visible instead.
    return text_body.replace("\x00", "\\x00")[:1_100_000]


def reject_payload(session: Session, source: object, body: object, reason: str) -> RejectedRow:
    """Store a payload that could not be used, with the reason, for people to inspect."""
    row = RejectedRow(
        source_id=str(source)[:64].replace("\x00", "") if source is not None else None,
        reason=reason[:2000].replace("\x00", "\\x00"),
        payload=payload_text(body),
        received_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return row


class WipeoutResultJson(TypedDict):
    """Rows deleted, per table."""

    current_counts: Count
    history: Count
    tallies: Count
    series: Annotated[Count, Meta(
        "Each race's totals over time: one row per total-vote tally and transaction that "
        "changed it.")]
    race_status: Count
    count_scopes: Annotated[Count, Meta(
        "One row per race and source: the newest version that named all of its counts.")]


def wipeout(session: Session) -> WipeoutResultJson:
    """Delete every result (counts, history, tallies, series, race status, scopes); keep
    the rest."""
    if session.get_bind().dialect.name == "postgresql":
        # Wait for batches in flight and keep new ones out until the wipe
        # commits; otherwise a batch could leave tallies without their counts.
        names = ", ".join(model.__tablename__ for model in RESULT_TABLES)
        session.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
        counted = WipeoutResultJson(**{
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in RESULT_TABLES})
        # Emptied, not deleted row by row: a delete leaves every row behind, dead, until
        # a vacuum, and the night after a wipe would scan them all.
        session.execute(text(f"TRUNCATE {names}"))
        return counted
    return WipeoutResultJson(**{model.__tablename__: session.execute(delete(model)).rowcount
                                for model in RESULT_TABLES})
