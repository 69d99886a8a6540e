"""Races at national size: a page of races by state, office and id, a small national index,
and one state's races, each read with SQL for those races alone.

`race_views` of every race costs seconds at 5,000 races; these read only the
races asked for (a page, a state), or for the index only the figures it shows.
Pages are limit/offset over races in id order: ids only grow (a race new to the
night gets the next id, at the end), so a page's races stay put while a client
walks the pages, the total is known, and any page can be asked for directly (a
publisher writes them in parallel). At 5,000 races an OFFSET costs nothing that
a cursor would save.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from rome.feeds.catalog import CATALOG_IDS
from rome.feeds.snapshot import TOTAL
from rome.read.results import (
    RaceView,
    race_views,
    rejected_count,
    source_order,
    units_reporting,
)
from rome.read.shapes import (
    IndexOfficeJson,
    IndexRaceJson,
    IndexStateJson,
    NationalIndexJson,
    RaceListJson,
    StateRacesJson,
)
from rome.store.models import CandidateRow, RaceRow, RaceStatusRow, TallyRow


@dataclass(frozen=True)
class RaceFilter:
    """Which races to list: every one of them when a field is empty, else those that match."""

    states: tuple[str, ...] = ()
    offices: tuple[str, ...] = ()
    race_ids: tuple[int, ...] = ()

    def where(self, query):
        """Narrow a query of RaceRow to the races shown (as race_views shows them) that match."""
        # The races race_views shows: the catalog's, and every race with results.
        # Race status first: one row per race and source, read once into a hash; the
        # tallies are probed only for a race no source gave a status for.
        query = query.where(or_(
            RaceRow.id < CATALOG_IDS,
            RaceRow.id.in_(select(RaceStatusRow.race_id)),
            exists().where(TallyRow.race_id == RaceRow.id),
        ))
        if self.states:
            query = query.where(RaceRow.state.in_(self.states))
        if self.offices:
            query = query.where(RaceRow.office.in_(self.offices))
        if self.race_ids:
            query = query.where(RaceRow.id.in_(self.race_ids))
        return query


def page_views(
    session: Session, where: RaceFilter = RaceFilter(), limit: int | None = None,
    offset: int = 0, now: datetime | None = None, stale_after: float | None = None,
    heard: dict[str, datetime] | None = None,
) -> tuple[list[RaceView], int]:
    """Return the matching races' views, `limit` of them after `offset` in id order, and how
    many match in all."""
    total = session.scalar(where.where(select(func.count()).select_from(RaceRow))) or 0
    ids_query = where.where(select(RaceRow.id)).order_by(RaceRow.id).offset(offset)
    if limit is not None:
        ids_query = ids_query.limit(limit)
    ids = list(session.scalars(ids_query))
    if not ids:
        return [], total
    return race_views(session, now, stale_after, only=ids, heard=heard), total


def races_page(
    session: Session, *, states: Collection[str] = (), offices: Collection[str] = (),
    race_ids: Collection[int] = (), limit: int | None = None, offset: int = 0,
    now: datetime | None = None, stale_after: float | None = None,
    heard: dict[str, datetime] | None = None, link: Callable[[int], str] | None = None,
) -> RaceListJson:
    """List the races of these states, offices and ids (all, for an empty one), paged.

    Each race is the API's RaceJson. limit None lists every match after offset. link(offset)
    says where the page at that offset is; without it next and previous are null.
    """
    where = RaceFilter(tuple(states), tuple(offices), tuple(race_ids))
    views, total = page_views(session, where, limit, offset, now, stale_after, heard)
    following = offset + len(views)
    previous = None
    if offset > 0 and limit is not None:
        previous = max(0, min(offset, total) - limit)
    return RaceListJson(
        races=[view.to_json() for view in views],
        rejected=rejected_count(session),
        total=total,
        limit=limit,
        offset=offset,
        next=link(following) if link and limit is not None and following < total else None,
        previous=link(previous) if link and previous is not None else None,
    )


def state_races(
    session: Session, state: str, now: datetime | None = None,
    stale_after: float | None = None, heard: dict[str, datetime] | None = None,
) -> StateRacesJson | None:
    """Return every race of one state (its postal code, as the feeds give it), or None when
    Rome shows no race there."""
    views, _ = page_views(session, RaceFilter(states=(state,)), now=now,
                          stale_after=stale_after, heard=heard)
    if not views:
        return None
    return StateRacesJson(
        state=state,
        offices=sorted({view.office for view in views}),
        races=[view.to_json() for view in views],
        rejected=rejected_count(session),
    )


@dataclass(frozen=True, order=True)
class RaceGroup:
    """How many races one state has for one office, and how many of them are called."""

    state: str
    office: str
    races: int
    called: int


def race_groups(session: Session) -> list[RaceGroup]:
    """Count the races shown per state and office, and the called ones: one small query,
    whatever the number of races, for a page that lists them by state and office."""
    # Joined, not probed per race: the called races are read once, into a hash.
    called = (select(RaceStatusRow.race_id).where(RaceStatusRow.winner_id.is_not(None))
              .distinct().subquery())
    rows = session.execute(RaceFilter().where(
        select(RaceRow.state, RaceRow.office, func.count(), func.count(called.c.race_id))
        .outerjoin(called, called.c.race_id == RaceRow.id)
    ).group_by(RaceRow.state, RaceRow.office))
    return sorted(RaceGroup(state, office, races, n_called)
                  for state, office, races, n_called in rows)


def search_index(index: NationalIndexJson, query: str,
                 limit: int) -> tuple[list[tuple[str, str, IndexRaceJson]], int]:
    """Find the races whose name, state, office or leader holds every word of query (any
    case): the first `limit` of them as (state, office, race), and how many there are.

    The index page's script (web/static/index.js) filters the same way in the browser.
    """
    words = query.casefold().split()
    found = [
        (state["state"], office["office"], race)
        for state in index["states"] for office in state["offices"] for race in office["races"]
        if words and all(word in " ".join((race["name"], state["state"], office["office"],
                                           race["leader"] or "")).casefold() for word in words)
    ]
    return found[:limit], len(found)


def percent_reporting(
    precincts: tuple[int | None, int | None], units: tuple[int, int] | None
) -> float | None:
    """Percent of precincts reporting where the feed counts them, else of units with votes,
    rounded down to a tenth (so 100 means all, never nearly all); None with neither."""
    reporting, total = precincts
    if not total:
        if units is None or not units[1]:
            return None
        reporting, total = units
    return math.floor(1000 * min(reporting or 0, total) / total) / 10


def race_percent_reporting(race: RaceView) -> float | None:
    """A race's percent reporting per its primary source, as the national index gives it."""
    primary = race.primary
    if primary is None or primary.level is None:
        return None
    return percent_reporting((primary.precincts_reporting, primary.precincts_total),
                             (primary.units_reporting, primary.units_total))


def national_index(session: Session) -> NationalIndexJson:
    """List every race shown, by state and office: id, name, leader, percent reporting, called.

    Read from the top-level tallies, race status and units reporting, not from every race's
    views: the same leader and primary source as the race pages, at a fraction of the cost.
    """
    # Sorted here, not in SQL: SQLite's and PostgreSQL's collations order names differently.
    races = sorted(
        session.execute(RaceFilter().where(
            select(RaceRow.id, RaceRow.name, RaceRow.state, RaceRow.office))).all(),
        key=lambda race: (race.state, race.office, race.id),
    )
    # Each source's figures at its topmost level, as the race pages read them.
    top = (select(TallyRow.race_id, TallyRow.source_id, func.min(TallyRow.rank).label("rank"))
           .where(TallyRow.vote_type == TOTAL)
           .group_by(TallyRow.race_id, TallyRow.source_id).subquery())
    figures: dict[int, dict[str, dict[int, int]]] = {}
    for race_id, source_id, candidate_id, votes in session.execute(
        select(TallyRow.race_id, TallyRow.source_id, TallyRow.candidate_id, TallyRow.votes)
        .join(top, (TallyRow.race_id == top.c.race_id) & (TallyRow.source_id == top.c.source_id)
              & (TallyRow.rank == top.c.rank))
        .where(TallyRow.vote_type == TOTAL)
    ):
        figures.setdefault(race_id, {}).setdefault(source_id, {})[candidate_id] = votes
    statuses = {
        (s.race_id, s.source_id): s
        for s in session.execute(select(RaceStatusRow.race_id, RaceStatusRow.source_id,
                                        RaceStatusRow.precincts_reporting,
                                        RaceStatusRow.precincts_total,
                                        RaceStatusRow.winner_id))
    }
    units = units_reporting(session)
    called = {race_id for (race_id, _), s in statuses.items() if s.winner_id is not None}

    # The primary source: the first, in the one source order, with figures.
    primary = {race_id: source_order(set(by_source))[0] for race_id, by_source in figures.items()}
    leaders = {race_id: _leader(figures[race_id][source]) for race_id, source in primary.items()}
    names = {
        c.id: f"{c.first} {c.last}".strip()
        for c in session.execute(select(CandidateRow.id, CandidateRow.first, CandidateRow.last)
                                 .where(CandidateRow.id.in_(
                                     [c for c in leaders.values() if c is not None])))
    }

    states: list[IndexStateJson] = []
    for race in races:
        if not states or states[-1]["state"] != race.state:
            states.append(IndexStateJson(state=race.state, races=0, called=0, offices=[]))
        state = states[-1]
        if not state["offices"] or state["offices"][-1]["office"] != race.office:
            state["offices"].append(IndexOfficeJson(office=race.office, races=[]))
        source = primary.get(race.id)
        status = statuses.get((race.id, source))
        reporting = None
        if source is not None:
            unit_counts = units.get((race.id, source))
            reporting = percent_reporting(
                (status.precincts_reporting, status.precincts_total) if status else (None, None),
                unit_counts[:2] if unit_counts else None,
            )
        leader = leaders.get(race.id)
        state["offices"][-1]["races"].append(IndexRaceJson(
            id=race.id, name=race.name, leader=names.get(leader) if leader else None,
            reporting=reporting, called=race.id in called,
        ))
        state["races"] += 1
        state["called"] += race.id in called
    return NationalIndexJson(races=len(races), states=states)


def _leader(votes: dict[int, int]) -> int | None:
    """The candidate ahead, as RaceView.leader: None when tied or without votes."""
    ranked = sorted(votes.items(), key=lambda item: item[1], reverse=True)
    if not ranked or ranked[0][1] == 0 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None
    return ranked[0][0]
