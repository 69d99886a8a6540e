"""Keep the latest race views in memory and rebuild them only when the results change."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rome.read.freshness import is_stale
from rome.read.results import RaceView, race_views, rejected_count, results_version
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


class ResultsCache:
    """Serve race views from memory while one cheap query says the database has not changed."""

    # Races, candidates and sources are read again at every rebuild, so a
    # catalog change shows with the next tally change. A state is never
    # changed once built, so threads may share one.

    def __init__(self) -> None:
        self.state: ResultsState | None = None

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
