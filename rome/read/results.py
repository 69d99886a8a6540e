"""Read the tallies back as races: each source side by side, its levels checked against each other.

A race's figure for a source is its tally at the topmost level that source
reports (the feed's own state or county row); the level below is the
breakdown, and where the two disagree the race says so. The race's headline
is its primary source's figure: the first source, in the catalog's order, that
has reported figures for the race.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, case, distinct, func, or_, select, text
from sqlalchemy.orm import Session

from rome.feeds.catalog import CATALOG_IDS, default_catalog
from rome.feeds.snapshot import LEVEL_RANK, LEVELS, TOTAL
from rome.read.freshness import is_stale, stale_reason
from rome.read.shapes import (
    PAYLOAD_SHOWN,
    CandidateJson,
    HeardSourceJson,
    HeardSourcesJson,
    LevelDisagreementJson,
    OriginalRowJson,
    RaceJson,
    RejectedJson,
    SourceJson,
)
from rome.store.models import (
    CandidateRow,
    CurrentRow,
    RaceRow,
    RaceStatusRow,
    RejectedRow,
    SourceRow,
    TallyRow,
)


@dataclass
class CandidateView:
    id: int
    first: str
    last: str
    party: str
    votes: int = 0
    share: float = 0.0
    by_source: dict[str, int] = field(default_factory=dict)
    vote_types: dict[str, int] = field(default_factory=dict)  # primary source, top level


@dataclass
class Disagreement:
    """A source's top-level figure for a candidate that is not the sum of the level below."""

    candidate_id: int
    level: str
    votes: int
    below_level: str
    below_votes: int

    def to_json(self) -> LevelDisagreementJson:
        return LevelDisagreementJson(
            candidate_id=self.candidate_id, level=self.level, votes=self.votes,
            below_level=self.below_level, below_votes=self.below_votes,
            difference=self.votes - self.below_votes,
        )


@dataclass
class SourceView:
    id: str
    name: str
    code: str = ""
    votes: int = 0
    level: str | None = None  # the level its race figure is read at
    changes: int = 0
    corrections: int = 0
    version: int | None = None
    feed_at: datetime | None = None
    last_update_at: datetime | None = None
    # When the source last reported anything, in any race: what staleness is
    # judged by (AP's answers leave out races that did not change).
    heard_at: datetime | None = None
    stale: bool = False
    stale_after: float | None = None
    rejected: int = 0
    units_reporting: int = 0
    units_total: int = 0
    units_level: str | None = None
    precincts_reporting: int | None = None
    precincts_total: int | None = None
    winner_id: int | None = None
    test: bool = False
    disagreements: list[Disagreement] = field(default_factory=list)
    by_candidate: dict[int, int] = field(default_factory=dict)

    @property
    def stale_reason(self) -> str | None:
        """Say, for a stale source, since when it is silent and how much silence is too much."""
        return stale_reason(self.heard_at, self.stale_after) if self.stale else None


@dataclass
class RaceView:
    id: int
    name: str
    candidates: list[CandidateView]
    sources: list[SourceView]
    state: str = ""
    office: str = ""
    election_date: str = ""  # YYYY-MM-DD, or "" where no feed said

    @property
    def primary(self) -> SourceView | None:
        """The source the headline reads: the first with figures, else the first listed."""
        reporting = (s for s in self.sources if s.level is not None)
        return next(reporting, self.sources[0] if self.sources else None)

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

    @property
    def caller(self) -> SourceView | None:
        """The first source, in the race's order, that has called the race."""
        return next((s for s in self.sources if s.winner_id), None)

    @property
    def winner_id(self) -> int | None:
        """The candidate the race is called for, if a source called it."""
        return self.caller.winner_id if self.caller else None

    @property
    def test(self) -> bool:
        return any(s.test for s in self.sources)

    def sources_differ_on(self, candidate: CandidateView) -> bool:
        """Tell whether two sources with figures for the race give candidate different ones."""
        reporting = [s for s in self.sources if s.level is not None]
        return len({s.by_candidate.get(candidate.id, 0) for s in reporting}) > 1

    @property
    def sources_disagree(self) -> bool:
        """Tell whether two reporting sources give any candidate different figures."""
        return any(self.sources_differ_on(c) for c in self.candidates)

    def to_json(self) -> RaceJson:
        return RaceJson(
            id=self.id,
            name=self.name,
            state=self.state,
            office=self.office,
            election_date=self.election_date or None,
            total_votes=self.total_votes,
            primary_source=self.primary.id if self.primary else None,
            last_update_at=_iso(self.last_update_at),
            leader=self.leader.id if self.leader else None,
            winner=self.winner_id,
            called_by=self.caller.id if self.caller else None,
            test=self.test,
            sources_disagree=self.sources_disagree,
            candidates=[
                CandidateJson(
                    id=c.id,
                    first=c.first,
                    last=c.last,
                    party=c.party,
                    votes=c.votes,
                    share=round(c.share, 6),
                    by_source=c.by_source,
                    vote_types=c.vote_types,
                    sources_differ=self.sources_differ_on(c),
                )
                for c in self.candidates
            ],
            sources=[_source_json(s) for s in self.sources],
        )


def _source_json(s: SourceView) -> SourceJson:
    return SourceJson(
        id=s.id,
        name=s.name,
        code=s.code,
        votes=s.votes,
        level=s.level,
        changes=s.changes,
        corrections=s.corrections,
        version=s.version,
        feed_at=_iso(s.feed_at),
        last_update_at=_iso(s.last_update_at),
        heard_at=_iso(s.heard_at),
        stale=s.stale,
        stale_after_seconds=s.stale_after,
        stale_reason=s.stale_reason,
        rejected=s.rejected,
        units_reporting=s.units_reporting,
        units_total=s.units_total,
        units_level=s.units_level,
        precincts_reporting=s.precincts_reporting,
        precincts_total=s.precincts_total,
        winner=s.winner_id,
        test=s.test,
        level_disagreements=[d.to_json() for d in s.disagreements],
    )


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; Rome stores UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def level_figures(tallies: list[TallyRow]) -> dict[tuple[int, str], dict[int, dict[int, int]]]:
    """Group total-vote tallies as {(race, source): {rank: {candidate: votes}}}."""
    levels: dict[tuple[int, str], dict[int, dict[int, int]]] = defaultdict(
        lambda: defaultdict(dict))
    for t in tallies:
        if t.vote_type == TOTAL:
            levels[(t.race_id, t.source_id)][t.rank][t.candidate_id] = t.votes
    return levels


def disagreements(by_rank: dict[int, dict[int, int]]) -> list[Disagreement]:
    """Compare the top level's figures with the sums of the level right below it."""
    ranks = sorted(by_rank)
    if len(ranks) < 2:
        return []
    top, below = by_rank[ranks[0]], by_rank[ranks[1]]
    # A candidate missing from one level has 0 there: that is a disagreement too.
    return [
        Disagreement(candidate, LEVELS[ranks[0]], top.get(candidate, 0), LEVELS[ranks[1]],
                     below.get(candidate, 0))
        for candidate in sorted(top.keys() | below.keys())
        if top.get(candidate, 0) != below.get(candidate, 0)
    ]


def level_disagreements(session: Session, races: frozenset[tuple[int, str]]) -> list[dict]:
    """Return, for log lines, every level disagreement of the given (race id, source) pairs."""
    if not races:
        return []
    race_ids = {race for race, _ in races}
    tallies = session.scalars(select(TallyRow).where(TallyRow.race_id.in_(race_ids),
                                                     TallyRow.vote_type == TOTAL))
    return [
        {"race_id": race, "source": source, **d.to_json()}
        for (race, source), by_rank in sorted(level_figures(list(tallies)).items())
        if (race, source) in races
        for d in disagreements(by_rank)
    ]


def source_order(source_ids: set[str]) -> list[str]:
    """Order sources as the catalog lists them, then the others by id: one order for every race."""
    listed = [s for s in default_catalog().sources if s in source_ids]
    return listed + sorted(source_ids - set(listed))


def race_views(
    session: Session, now: datetime | None = None, stale_after: float | None = None,
    only: Collection[int] | None = None, heard: dict[str, datetime] | None = None,
) -> list[RaceView]:
    """Build every race (or only those ids) with each source's figures, levels, progress and
    freshness.

    heard: when each source last reported, in any race (heard_by_source); read here when
    not given. With `only`, every query reads those races' rows alone.
    """
    # Plain rows, not ORM objects: building tens of thousands of those was most of the time.
    tallies_query = select(*TallyRow.__table__.c)
    statuses_query = select(*RaceStatusRow.__table__.c)
    if only is not None:
        tallies_query = tallies_query.where(TallyRow.race_id.in_(only))
        statuses_query = statuses_query.where(RaceStatusRow.race_id.in_(only))
    tallies = session.execute(tallies_query).all()
    statuses = session.execute(statuses_query).all()
    races, candidates = _races_and_candidates(session, tallies, statuses, only)
    views = _source_views(session, races, tallies, statuses)
    _read_top_levels(views, tallies)
    _count_changes(views, tallies)
    _read_statuses(views, statuses)
    _units_reporting(views, units_reporting(session, only))
    if heard is None:
        # Every tally is at hand when every race is read; a few races' are not enough.
        heard = (_newest_by_source(tallies, statuses) if only is None
                 else heard_by_source(session))
    _judge_freshness(session, views, heard, now or datetime.now(UTC), stale_after)
    _candidate_figures(races, candidates, tallies)
    return list(races.values())


def heard_by_source(session: Session) -> dict[str, datetime]:
    """Say when each source last reported anything, in any race: what staleness is judged by."""
    # A report that changes no figure moves no tally, but its race status (every newer
    # version does): the source was heard all the same.
    heard: dict[str, datetime] = {}
    for column, source_id in ((TallyRow.last_update_at, TallyRow.source_id),
                              (RaceStatusRow.updated_at, RaceStatusRow.source_id)):
        for source, at in session.execute(select(source_id, func.max(column))
                                          .group_by(source_id)):
            if at is not None and (source not in heard or _aware(at) > heard[source]):
                heard[source] = _aware(at)
    return heard


def heard_sources(session: Session, heard: dict[str, datetime],
                  stale_after: float | None) -> HeardSourcesJson:
    """Every source a race can name (each stored source, and any heard from without a row),
    named and heard from as race_views gives it: heard is heard_by_source's answer."""
    rows = {s.id: s for s in session.scalars(select(SourceRow))}
    sources = []
    for source_id in source_order(set(rows) | set(heard)):
        name, code = _label(rows.get(source_id), source_id)
        sources.append(HeardSourceJson(id=source_id, name=name, code=code,
                                       heard_at=_iso(heard.get(source_id)),
                                       stale_after_seconds=stale_after))
    return HeardSourcesJson(sources=sources)


def _newest_by_source(tallies: list, statuses: list) -> dict[str, datetime]:
    """heard_by_source, from every tally and race status already read."""
    newest: dict[str, datetime] = {}
    for source, moment in [*((t.source_id, t.last_update_at) for t in tallies),
                           *((s.source_id, s.updated_at) for s in statuses)]:
        if moment is None:
            continue
        at = _aware(moment)
        if source not in newest or at > newest[source]:
            newest[source] = at
    return newest


def _races_and_candidates(
    session: Session, tallies: list, statuses: list, only: Collection[int] | None = None
) -> tuple[dict[int, RaceView], dict[int, CandidateView]]:
    """Return the races to show (the catalog's and any with results), each with its candidates."""
    with_results = {t.race_id for t in tallies} | {s.race_id for s in statuses}
    shown = select(RaceRow).where(or_(RaceRow.id < CATALOG_IDS, RaceRow.id.in_(with_results)))
    if only is not None:
        shown = shown.where(RaceRow.id.in_(only))
    races = {
        r.id: RaceView(r.id, r.name, [], [], r.state, r.office, r.election_date)
        for r in session.scalars(shown.order_by(RaceRow.id))
    }
    candidates: dict[int, CandidateView] = {}
    for c in session.scalars(
        select(CandidateRow).where(CandidateRow.race_id.in_(races)).order_by(CandidateRow.id)
    ):
        candidates[c.id] = CandidateView(c.id, c.first, c.last, c.party)
        races[c.race_id].candidates.append(candidates[c.id])
    return races, candidates


def _source_views(
    session: Session, races: dict[int, RaceView], tallies: list, statuses: list
) -> dict[tuple[int, str], SourceView]:
    """Give each race a view per source that reports it, in source order; return them by key."""
    source_rows = {s.id: s for s in session.scalars(select(SourceRow))}
    catalog = default_catalog()

    # Which sources report which race: the catalog's, and whoever has sent figures.
    reporters: dict[int, set[str]] = defaultdict(set)
    for race in catalog.races.values():
        if race.id in races:
            reporters[race.id].update(s for s in race.keys if s in source_rows)
    for race_id, source_id in {(t.race_id, t.source_id) for t in tallies} | {
        (s.race_id, s.source_id) for s in statuses
    }:
        if race_id in races:
            reporters[race_id].add(source_id)

    views: dict[tuple[int, str], SourceView] = {}
    for race_id, source_ids in reporters.items():
        for source_id in source_order(source_ids):
            view = SourceView(source_id, *_label(source_rows.get(source_id), source_id))
            views[(race_id, source_id)] = view
            races[race_id].sources.append(view)
    return views


def _label(row: SourceRow | None, source_id: str) -> tuple[str, str]:
    """A source's name and code, from its row; its id (and the id in capitals) without one."""
    return (row.name, row.code) if row else (source_id, source_id.upper())


def _read_top_levels(views: dict, tallies: list) -> dict[tuple[int, str], dict[int, dict]]:
    """Set each source's figures from its topmost level, with where the level below disagrees.

    Returns every (race, source)'s figures by level, as level_figures does.
    """
    levels = level_figures(tallies)
    for (race_id, source_id), by_rank in levels.items():
        view = views.get((race_id, source_id))
        if view is None:
            continue
        top = min(by_rank)
        view.level = LEVELS[top]
        view.by_candidate = dict(by_rank[top])
        view.votes = sum(by_rank[top].values())
        view.disagreements = disagreements(by_rank)
    return levels


def _count_changes(views: dict, tallies: list) -> None:
    """Add up each source's changes and corrections, and its last update, at its top level."""
    for t in tallies:
        view = views.get((t.race_id, t.source_id))
        if view is None or view.level is None or LEVELS[t.rank] != view.level:
            continue
        if t.vote_type == TOTAL:
            view.changes += t.changes
            view.corrections += t.corrections
            at = _aware(t.last_update_at)
            if view.last_update_at is None or at > view.last_update_at:
                view.last_update_at = at


def _read_statuses(views: dict, statuses: list) -> None:
    """Set what each source says of the race as a whole: version, precincts, winner, test."""
    for s in statuses:
        view = views.get((s.race_id, s.source_id))
        if view is not None:
            view.version, view.feed_at = s.version, _aware(s.feed_at)
            view.precincts_reporting, view.precincts_total = (
                s.precincts_reporting, s.precincts_total)
            view.winner_id, view.test = s.winner_id, s.test


def _judge_freshness(session: Session, views: dict, heard: dict[str, datetime], now: datetime,
                     stale_after: float | None) -> None:
    """Say when each source was last heard from, whether it is stale, and what it had rejected."""
    rejected = rejected_by_source(session)
    for (_, source_id), view in views.items():
        # A source is live if it reported anything lately, not only this race:
        # AP's answers leave out races that did not change.
        view.heard_at = heard.get(source_id)
        view.stale_after = stale_after
        view.stale = is_stale(view.heard_at, now, stale_after)
        view.rejected = rejected.get(source_id, 0)


def _candidate_figures(races: dict[int, RaceView], candidates: dict[int, CandidateView],
                       tallies: list) -> None:
    """Give each candidate the primary source's votes and share, each source's figure, and
    the vote types of the primary source's top level."""
    # Vote types: the primary source's, at its top level. One pass over the
    # tallies, not one per race: a national night has hundreds of races.
    primary_top: dict[int, tuple[str, int]] = {}
    for race in races.values():
        primary = race.primary
        for c in race.candidates:
            c.by_source = {s.id: s.by_candidate[c.id] for s in race.sources
                           if c.id in s.by_candidate}
            c.votes = primary.by_candidate.get(c.id, 0) if primary else 0
        if primary is not None and primary.level is not None:
            primary_top[race.id] = (primary.id, LEVEL_RANK[primary.level])
        total = race.total_votes
        for c in race.candidates:
            c.share = c.votes / total if total else 0.0
    for t in tallies:
        if (t.vote_type != TOTAL and primary_top.get(t.race_id) == (t.source_id, t.rank)
                and t.candidate_id in candidates):
            candidates[t.candidate_id].vote_types[t.vote_type] = t.votes


def units_reporting(
    session: Session, only: Collection[int] | None = None
) -> dict[tuple[int, str], tuple[int, int, int]]:
    """Count, per race and source, the units of the breakdown level with any votes, of all.

    The breakdown level is the one below the source's top, or the top if it is all there
    is. Returns {(race, source): (reporting, total, rank)}.
    """
    query = (
        select(CurrentRow.race_id, CurrentRow.source_id, CurrentRow.rank,
               func.count(distinct(CurrentRow.unit_id)),
               func.count(distinct(case((CurrentRow.votes > 0, CurrentRow.unit_id)))))
        .where(CurrentRow.vote_type == TOTAL)
        .group_by(CurrentRow.race_id, CurrentRow.source_id, CurrentRow.rank)
    )
    if only is not None:
        query = query.where(CurrentRow.race_id.in_(only))
    by_rank: dict[tuple[int, str], dict[int, tuple[int, int]]] = defaultdict(dict)
    for race_id, source_id, rank, total, reporting in session.execute(query):
        by_rank[(race_id, source_id)][rank] = (int(reporting), int(total))
    found = {}
    for key, counts in by_rank.items():
        ranks = sorted(counts)
        wanted = ranks[1] if len(ranks) > 1 else ranks[0]
        found[key] = (*counts[wanted], wanted)
    return found


def _units_reporting(views: dict, units: dict[tuple[int, str], tuple[int, int, int]]) -> None:
    for key, (reporting, total, rank) in units.items():
        view = views.get(key)
        if view is not None:
            view.units_total, view.units_reporting = total, reporting
            view.units_level = LEVELS[rank]


# Built once: this query runs on every request, so it must cost next to nothing.
RESULTS_VERSION = text(
    "SELECT t.n, t.votes, t.changes, t.newest, s.n, s.newest, r.n, r.last"
    " FROM (SELECT count(*) AS n, sum(votes) AS votes, sum(changes) AS changes,"
    " max(last_update_at) AS newest FROM tallies) AS t"
    " CROSS JOIN (SELECT count(*) AS n, max(updated_at) AS newest FROM race_status) AS s"
    " CROSS JOIN (SELECT count(*) AS n, max(id) AS last FROM rejected) AS r"
)


def results_version(connection: Connection) -> tuple:
    """Fingerprint tallies, race status and rejected payloads: it moves when race_views would."""
    # Every applied batch moves max(last_update_at) of tallies or race_status;
    # a wipeout empties them; rejected payloads are only ever added.
    return tuple(connection.execute(RESULTS_VERSION).one())


def race_ids(session: Session) -> set[int]:
    """Return the id of every race Rome knows."""
    return set(session.scalars(select(RaceRow.id)))


def original_rows(races: list[RaceView]) -> list[OriginalRowJson]:
    """Return the original nero's rows: one per race, candidate and reporting source."""
    rows = []
    for race in races:
        for c in race.candidates:
            for source in race.sources:
                if c.id in source.by_candidate:
                    rows.append(OriginalRowJson(
                        raceID=str(race.id),
                        raceName=race.name,
                        firstName=c.first,
                        lastName=c.last,
                        party=c.party,
                        candidateID=str(c.id),
                        voteCount=source.by_candidate[c.id],
                        source=source.code,
                    ))
    return rows


def rejected_count(session: Session) -> int:
    """Count every payload Rome has rejected."""
    return session.scalar(select(func.count()).select_from(RejectedRow)) or 0


def rejected_by_source(session: Session) -> dict[str | None, int]:
    """Count rejected payloads per claimed source (None when none could be read)."""
    counts = select(RejectedRow.source_id, func.count()).group_by(RejectedRow.source_id)
    return {source: count for source, count in session.execute(counts)}


def recent_rejected(session: Session, limit: int = 50) -> list[RejectedJson]:
    """List the newest rejected payloads, payload cut to a readable length in the database."""
    rows = session.execute(
        select(RejectedRow.id, RejectedRow.source_id, RejectedRow.reason,
               func.substr(RejectedRow.payload, 1, PAYLOAD_SHOWN), RejectedRow.received_at)
        .order_by(RejectedRow.id.desc()).limit(limit)
    )
    return [
        RejectedJson(id=r[0], source=r[1], reason=r[2], payload=r[3], received_at=_iso(r[4]))
        for r in rows
    ]
