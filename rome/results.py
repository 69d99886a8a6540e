"""Read the tallies back as race results for pages and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from rome.freshness import is_stale
from rome.models import CandidateRow, RaceRow, RejectedRow, SourceRow, TallyRow


@dataclass
class CandidateView:
    id: int
    first: str
    last: str
    party: str
    votes: int = 0
    share: float = 0.0
    by_source: dict[str, int] = field(default_factory=dict)


@dataclass
class SourceView:
    id: str
    name: str
    votes: int = 0
    updates: int = 0
    last_update_at: datetime | None = None
    stale: bool = False
    stale_after: float | None = None
    rejected: int = 0


@dataclass
class RaceView:
    id: int
    name: str
    candidates: list[CandidateView]
    sources: list[SourceView]

    @property
    def total_votes(self) -> int:
        return sum(c.votes for c in self.candidates)

    @property
    def last_update_at(self) -> datetime | None:
        times = [s.last_update_at for s in self.sources if s.last_update_at]
        return max(times) if times else None

    @property
    def leader(self) -> CandidateView | None:
        ranked = sorted(self.candidates, key=lambda c: c.votes, reverse=True)
        if not ranked or ranked[0].votes == 0:
            return None
        if len(ranked) > 1 and ranked[1].votes == ranked[0].votes:
            return None
        return ranked[0]

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "total_votes": self.total_votes,
            "last_update_at": _iso(self.last_update_at),
            "leader": self.leader.id if self.leader else None,
            "candidates": [
                {
                    "id": c.id,
                    "first": c.first,
                    "last": c.last,
                    "party": c.party,
                    "votes": c.votes,
                    "share": round(c.share, 6),
                    "by_source": c.by_source,
                }
                for c in self.candidates
            ],
            "sources": [
                {
                    "id": s.id,
                    "name": s.name,
                    "votes": s.votes,
                    "updates": s.updates,
                    "last_update_at": _iso(s.last_update_at),
                    "stale": s.stale,
                    "stale_after_seconds": s.stale_after,
                    "rejected": s.rejected,
                }
                for s in self.sources
            ],
        }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; Rome stores UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def race_views(
    session: Session, now: datetime | None = None, stale_after: float | None = None
) -> list[RaceView]:
    """Build every race with its candidates' totals and each source's share and freshness."""
    races = {
        r.id: RaceView(r.id, r.name, [], [])
        for r in session.scalars(select(RaceRow).order_by(RaceRow.id))
    }
    candidates: dict[int, CandidateView] = {}
    for c in session.scalars(select(CandidateRow).order_by(CandidateRow.id)):
        candidates[c.id] = CandidateView(c.id, c.first, c.last, c.party)
        races[c.race_id].candidates.append(candidates[c.id])
    sources: dict[str, SourceView] = {}
    for s in session.scalars(select(SourceRow).order_by(SourceRow.id)):
        sources[s.id] = SourceView(s.id, s.name)
        races[s.race_id].sources.append(sources[s.id])
    for t in session.scalars(select(TallyRow)):
        candidate, source = candidates[t.candidate_id], sources[t.source_id]
        candidate.votes += t.votes
        candidate.by_source[t.source_id] = t.votes
        source.votes += t.votes
        source.updates += t.updates
        if source.last_update_at is None or t.last_update_at > source.last_update_at:
            source.last_update_at = t.last_update_at
    now = now or datetime.now(UTC)
    rejected = rejected_by_source(session)
    for source in sources.values():
        source.stale_after = stale_after
        source.stale = is_stale(source.last_update_at, now, stale_after)
        source.rejected = rejected.get(source.id, 0)
    for race in races.values():
        total = race.total_votes
        for c in race.candidates:
            c.share = c.votes / total if total else 0.0
    return list(races.values())


# Built once: this query runs on every request, so it must cost next to nothing.
RESULTS_VERSION = text(
    "SELECT t.n, t.votes, t.updates, t.newest, r.n, r.last"
    " FROM (SELECT count(*) AS n, sum(votes) AS votes, sum(updates) AS updates,"
    " max(last_update_at) AS newest FROM tallies) AS t"
    " CROSS JOIN (SELECT count(*) AS n, max(id) AS last FROM rejected) AS r"
)


def results_version(connection: Connection) -> tuple:
    """Fingerprint the tallies and rejected payloads: it changes whenever race_views would."""
    # Every recorded batch adds to sum(updates) and moves max(last_update_at); a
    # wipeout empties the table; rejected payloads are only ever added.
    return tuple(connection.execute(RESULTS_VERSION).one())


def race_ids(session: Session) -> set[int]:
    """Return the id of every race Rome knows."""
    return set(session.scalars(select(RaceRow.id)))


def original_rows(session: Session) -> list[dict]:
    """Return one row per candidate in the original demo's JSON shape."""
    rows = []
    for race in race_views(session):
        source = ",".join(s.id for s in race.sources)
        for c in race.candidates:
            rows.append(
                {
                    "raceID": race.id,
                    "raceName": race.name,
                    "first": c.first,
                    "last": c.last,
                    "party": c.party,
                    "candidateID": c.id,
                    "voteCount": c.votes,
                    "source": source,
                }
            )
    return rows


def rejected_count(session: Session) -> int:
    """Count every payload Rome has rejected."""
    return session.scalar(select(func.count()).select_from(RejectedRow)) or 0


def rejected_by_source(session: Session) -> dict[str | None, int]:
    """Count rejected payloads per claimed source (None when none could be read)."""
    counts = select(RejectedRow.source_id, func.count()).group_by(RejectedRow.source_id)
    return {source: count for source, count in session.execute(counts)}


def recent_rejected(session: Session, limit: int = 50) -> list[dict]:
    """List the newest rejected payloads, payload cut to a readable length."""
    # Cut in the database: a stored payload may be a megabyte.
    rows = session.execute(
        select(
            RejectedRow.id,
            RejectedRow.source_id,
            RejectedRow.reason,
            func.substr(RejectedRow.payload, 1, 500).label("payload"),
            RejectedRow.received_at,
        )
        .order_by(RejectedRow.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": r.id,
            "source": r.source_id,
            "reason": r.reason,
            "payload": r.payload,
            "received_at": _iso(r.received_at),
        }
        for r in rows
    ]
