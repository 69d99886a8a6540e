"""Recompute the current state from the history, and the tallies from the current state.

Five checks: every current count equals the newest history row of
its key; every tally equals the sum of its current counts (and the number of
its units, changes and corrections); every total-vote tally equals the newest
figure of its series, the one charts end on; every race's scope holds as many
counts as are stored for it (the apply decides by that number whether a batch
names them all); and, given an expectation file, the tallies equal what a known
stream must produce.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, func, select, text
from sqlalchemy.orm import Session

from rome.feeds.snapshot import TOTAL
from rome.store.models import (
    CandidateRow,
    CountScopeRow,
    CurrentRow,
    HistoryRow,
    RaceRow,
    SeriesRow,
    TallyRow,
)


@dataclass(frozen=True)
class Difference:
    """Something stored that disagrees with what it is recomputed from."""

    key: tuple
    found: object
    reference: object
    against: str

    def __str__(self) -> str:
        key = "/".join(str(part) for part in self.key)
        return f"{key}: stored={_show(self.found)} {self.against}={_show(self.reference)}"


def _show(value: object) -> str:
    return "missing" if value is None else str(value)


def compare(found: dict, reference: dict, against: str) -> list[Difference]:
    """List every key where found and reference differ, in key order."""
    return [
        Difference(key, found.get(key), reference.get(key), against)
        for key in sorted(found.keys() | reference.keys(), key=repr)
        if found.get(key) != reference.get(key)
    ]


COUNT_KEY = (CurrentRow.race_id, CurrentRow.source_id, CurrentRow.unit_id,
             CurrentRow.candidate_id, CurrentRow.vote_type)
HISTORY_KEY = (HistoryRow.race_id, HistoryRow.source_id, HistoryRow.unit_id,
               HistoryRow.candidate_id, HistoryRow.vote_type)
TALLY_KEY = (TallyRow.race_id, TallyRow.source_id, TallyRow.candidate_id, TallyRow.vote_type,
             TallyRow.rank)


def current_from_history(session: Session) -> dict[tuple, int]:
    """Return every key's newest figure in the history (ids grow in apply order per key)."""
    newest = (
        select(*HISTORY_KEY, func.max(HistoryRow.id).label("id")).group_by(*HISTORY_KEY)
    ).subquery()
    rows = session.execute(
        select(*HISTORY_KEY, HistoryRow.votes).join(newest, newest.c.id == HistoryRow.id)
    )
    return {tuple(row[:5]): int(row[5]) for row in rows}


def tallies_from_current(session: Session) -> dict[tuple, tuple[int, int, int, int]]:
    """Recompute every tally as (votes, units, changes, corrections)."""
    group = (CurrentRow.race_id, CurrentRow.source_id, CurrentRow.candidate_id,
             CurrentRow.vote_type, CurrentRow.rank)
    sums = {
        tuple(row[:5]): [int(row[5]), int(row[6]), 0, 0]
        for row in session.execute(
            select(*group, func.sum(CurrentRow.votes), func.count()).group_by(*group)
        )
    }
    hgroup = (HistoryRow.race_id, HistoryRow.source_id, HistoryRow.candidate_id,
              HistoryRow.vote_type, HistoryRow.rank)
    lowered = func.sum(case((HistoryRow.delta < 0, 1), else_=0))
    for row in session.execute(select(*hgroup, func.count(), lowered).group_by(*hgroup)):
        entry = sums.setdefault(tuple(row[:5]), [0, 0, 0, 0])
        entry[2], entry[3] = int(row[5]), int(row[6] or 0)
    return {key: tuple(value) for key, value in sums.items()}


def newest_in_series(session: Session) -> dict[tuple, int]:
    """Return the newest figure of every series, keyed as its tally is."""
    key = (SeriesRow.race_id, SeriesRow.source_id, SeriesRow.rank, SeriesRow.candidate_id)
    newest = select(*key, func.max(SeriesRow.at).label("at")).group_by(*key).subquery()
    rows = session.execute(
        select(SeriesRow.race_id, SeriesRow.source_id, SeriesRow.candidate_id, SeriesRow.rank,
               SeriesRow.votes)
        .join(newest, and_(newest.c.race_id == SeriesRow.race_id,
                           newest.c.source_id == SeriesRow.source_id,
                           newest.c.rank == SeriesRow.rank,
                           newest.c.candidate_id == SeriesRow.candidate_id,
                           newest.c.at == SeriesRow.at))
    )
    return {(race, source, candidate, TOTAL, rank): int(votes)
            for race, source, candidate, rank, votes in rows}


def scope_counts(session: Session) -> tuple[dict[tuple, int], dict[tuple, int]]:
    """Per race and source: the counts its scope row says it holds, and those stored
    (scopes that hold none left out of both)."""
    said = {(race, source): int(counts) for race, source, counts in session.execute(
        select(CountScopeRow.race_id, CountScopeRow.source_id, CountScopeRow.counts)
        .where(CountScopeRow.counts != 0))}
    held = {(race, source): int(counts) for race, source, counts in session.execute(
        select(CurrentRow.race_id, CurrentRow.source_id, func.count())
        .group_by(CurrentRow.race_id, CurrentRow.source_id))}
    return said, held


def audit(session: Session) -> list[Difference]:
    """Recompute current counts from the history and tallies from the counts, and check that
    every series ends on its tally and every scope's number of counts is theirs; list
    differences.

    Call it first in a transaction: on PostgreSQL it reads every table from one
    snapshot, so batches committing meanwhile cannot look like differences.
    """
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    current = {tuple(row[:5]): int(row[5])
               for row in session.execute(select(*COUNT_KEY, CurrentRow.votes))}
    stored = {
        tuple(row[:5]): (int(row[5]), int(row[6]), int(row[7]), int(row[8]))
        for row in session.execute(select(*TALLY_KEY, TallyRow.votes, TallyRow.units,
                                          TallyRow.changes, TallyRow.corrections))
    }
    total_votes = {key: value[0] for key, value in stored.items() if key[3] == TOTAL}
    return (compare(current, current_from_history(session), "history")
            + compare(stored, tallies_from_current(session), "recomputed")
            + compare(newest_in_series(session), total_votes, "tally")
            + compare(*scope_counts(session), "counted"))


def tallies_by_key(session: Session) -> dict[tuple[str, str, str, str, int], int]:
    """Return every tally's votes keyed by Rome's race and candidate keys (as expectations are)."""
    rows = session.execute(
        select(RaceRow.key, TallyRow.source_id, CandidateRow.key, TallyRow.vote_type,
               TallyRow.rank, TallyRow.votes)
        .join(RaceRow, RaceRow.id == TallyRow.race_id)
        .join(CandidateRow, CandidateRow.id == TallyRow.candidate_id)
    )
    return {tuple(row[:5]): int(row[5]) for row in rows}
