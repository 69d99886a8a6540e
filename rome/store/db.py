"""Create the one engine and sessionmaker, and run migrations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from rome.feeds.catalog import Catalog, default_catalog
from rome.store.models import CandidateRow, RaceRow, SourceRow

MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass
class Database:
    engine: Engine
    Session: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the web read while a worker writes; the busy timeout makes
    # concurrent writers wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def driver_url(url: str) -> str:
    """Pin PostgreSQL URLs to psycopg2 (SQLAlchemy 2.1 would pick psycopg 3)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def connect(url: str) -> Database:
    """Build the engine for url with settings that suit Rome's workload."""
    url = driver_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    return Database(engine, sessionmaker(engine, expire_on_commit=False))


def upgrade(url: str, revision: str = "head") -> None:
    """Apply Alembic migrations up to revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", driver_url(url).replace("%", "%%"))
    command.upgrade(config, revision)


def seed_catalog(session: Session, catalog: Catalog | None = None) -> int:
    """Insert the catalog's sources, races and candidates that are missing; return how many."""
    catalog = catalog or default_catalog()
    added = 0
    known_races = set(session.scalars(select(RaceRow.id)))
    known_candidates = set(session.scalars(select(CandidateRow.id)))
    known_sources = set(session.scalars(select(SourceRow.id)))
    for race in catalog.races.values():
        if race.id not in known_races:
            session.add(RaceRow(id=race.id, key=race.key, name=race.name, state=race.state,
                                office=race.office))
            added += 1
    session.flush()
    for race in catalog.races.values():
        for c in race.candidates:
            if c.id not in known_candidates:
                session.add(CandidateRow(id=c.id, key=c.key, race_id=race.id, first=c.first,
                                         last=c.last, party=c.party))
                added += 1
    for source in catalog.sources.values():
        if source.id not in known_sources:
            session.add(SourceRow(id=source.id, name=source.name, code=source.code,
                                  format=source.format))
            added += 1
    session.flush()
    return added


def begin_night_if_over(session: Session, night_seconds: float, now: datetime) -> bool:
    """Start a new simulated night if the last one is over: wipe the results, restart the clock.

    Only the demo calls this: a results night that is over stays over anywhere else.
    """
    from rome.store.tally import wipeout

    starts = [s.started_at for s in session.scalars(select(SourceRow))]
    if not starts or all(
        now - (s if s.tzinfo else s.replace(tzinfo=UTC)) < timedelta(seconds=night_seconds)
        for s in starts
    ):
        return False
    wipeout(session)
    session.execute(update(SourceRow).values(started_at=now))
    return True


def prepare(url: str) -> Database:
    """Migrate the database at url, seed the catalog, and return it connected."""
    upgrade(url)
    database = connect(url)
    with database.Session.begin() as session:
        seed_catalog(session)
    return database
