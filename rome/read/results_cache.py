"""Keep the latest race views in memory and rebuild them only when the results change."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rome.read.freshness import is_stale
from rome.read.results import (
    RaceView,
    heard_by_source,
    race_views,
    rejected_count,
    results_version,
)
from rome.store.db import Database


@dataclass(frozen=True)
class ResultsState:
    """Race views and the rejected count as of one results version."""

    version: tuple
    races: list[RaceView]
    rejected: int
    stale_after: float | None
    # What callers derive from the views (a serialized body, say), made once per state.
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    def current_at(self, version: tuple, now: datetime, stale_after: float | None) -> bool:
        """Tell whether these views still hold: same version and no source went stale since."""
        if version != self.version or stale_after != self.stale_after:
            return False
        return all(
            source.stale == is_stale(source.heard_at, now, stale_after)
            for race in self.races
            for source in race.sources
        )


@dataclass
class ListingState:
    """What the filtered reads (a page of races, a state, the index) share as of one results
    version: when each source was last heard from, and each answer built since, by its key."""

    version: tuple
    stale_after: float | None
    heard: dict[str, datetime]
    stale: dict[str, bool]
    memo: dict = field(default_factory=dict, repr=False)

    def current_at(self, version: tuple, now: datetime, stale_after: float | None) -> bool:
        """Tell whether its answers still hold: same version and no source went stale since."""
        return (version == self.version and stale_after == self.stale_after and all(
            stale == is_stale(self.heard[source], now, stale_after)
            for source, stale in self.stale.items()))

    def answer(self, key: object, build):
        """Return the answer built for key as of this state, building it on first use."""
        if key not in self.memo:
            if len(self.memo) >= MAX_ANSWERS:
                # Any query string is a key: never let strangers grow it without bound.
                self.memo.clear()
            self.memo[key] = build()
        return self.memo[key]


MAX_ANSWERS = 256  # answers kept per results version; past it, the oldest go all at once


class ResultsCache:
    """Serve race views from memory while one cheap query says the database has not changed."""

    # Races, candidates and sources are read again at every rebuild, so a
    # catalog change shows with the next tally change. A state is never
    # changed once built, so threads may share one.

    def __init__(self) -> None:
        self.state: ResultsState | None = None
        self.listing_state: ListingState | None = None

    def listing(self, database: Database, now: datetime,
                stale_after: float | None) -> ListingState:
        """Return the state filtered reads share as of now: a new one (and no answer built
        yet) whenever the results changed or a source went stale; never every race's views."""
        with database.engine.connect() as connection:
            version = results_version(connection)
        state = self.listing_state
        if state is None or not state.current_at(version, now, stale_after):
            with database.Session() as session:
                heard = heard_by_source(session)
            state = self.listing_state = ListingState(
                version, stale_after, heard,
                {source: is_stale(at, now, stale_after) for source, at in heard.items()})
        return state

    def get(self, database: Database, now: datetime, stale_after: float | None) -> ResultsState:
        """Return the views as of now, rebuilt only if the results or a staleness changed."""
        # A bare connection: the check is one query, a session would cost more than it.
        with database.engine.connect() as connection:
            version = results_version(connection)
        state = self.state
        if state is None or not state.current_at(version, now, stale_after):
            with database.Session() as session:
                races, rejected = race_views(session, now, stale_after), rejected_count(session)
            # Read after the version: the views are at least that new, and a
            # newer write changes the version, so the next call rebuilds.
            state = self.state = ResultsState(version, races, rejected, stale_after)
        return state
