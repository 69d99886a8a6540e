"""Declare Rome's tables; Alembic migrations in rome/store/migrations create them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CURRENT_FILLFACTOR = 70  # percent of each current_counts page filled by inserts

# SQLite gives autoincrement only to INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class SourceRow(Base):
    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    code: Mapped[str] = mapped_column(String(16))  # the original's spelling: "AP"
    format: Mapped[str] = mapped_column(String(16))
    # When the simulated feed's night began: its counts are a function of time since.
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())


class RaceRow(Base):
    __tablename__ = "races"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # "catalog:<id>" for the catalog's races, "<source>:<feed key>" for others.
    key: Mapped[str] = mapped_column(String(240), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(16), default="")
    office: Mapped[str] = mapped_column(String(300), default="")
    # YYYY-MM-DD of the first snapshot that named the race with a date; "" if none did.
    election_date: Mapped[str] = mapped_column(String(10), default="", server_default="")


class CandidateRow(Base):
    __tablename__ = "candidates"

    # Ids are unique across races: the original reused 1, 2, ... in every race.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(480), unique=True)
    race_id: Mapped[int] = mapped_column(ForeignKey("races.id"), index=True)
    first: Mapped[str] = mapped_column(String(300))
    last: Mapped[str] = mapped_column(String(300))
    party: Mapped[str] = mapped_column(String(16))


class UnitRow(Base):
    """A reporting unit of one source: a state, county, precinct..."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(240), unique=True)  # "<source>:<feed key>"
    source_id: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(300))
    level: Mapped[str] = mapped_column(String(16))
    rank: Mapped[int] = mapped_column(SmallInteger)  # rome.feeds.snapshot.LEVEL_RANK
    parent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CurrentRow(Base):
    """The newest version of one count: what each source says now, per unit and vote type."""

    __tablename__ = "current_counts"
    # Room on every page for a row's next version: updates stay HOT (no new index
    # entry) and pruning reclaims old versions in place, so the table keeps its
    # size without vacuum however long the night (docs/benchmarks.md).
    __table_args__ = {"postgresql_with": {"fillfactor": CURRENT_FILLFACTOR}}

    race_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vote_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    rank: Mapped[int] = mapped_column(SmallInteger)
    votes: Mapped[int] = mapped_column(BigInteger)
    # What the row said before its last change (None when it was new): the
    # upsert sets it, so the change's delta comes back with the new row.
    prev_votes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    version: Mapped[int] = mapped_column(BigInteger)
    feed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HistoryRow(Base):
    """Every accepted change of a count, appended and never updated.

    Only its primary key is indexed: nothing reads it by race (charts read the
    series), so ingest keeps one index that grows at its right edge only.
    """

    __tablename__ = "history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    race_id: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int] = mapped_column(Integer)
    candidate_id: Mapped[int] = mapped_column(Integer)
    vote_type: Mapped[str] = mapped_column(String(32))
    rank: Mapped[int] = mapped_column(SmallInteger)
    version: Mapped[int] = mapped_column(BigInteger)
    votes: Mapped[int] = mapped_column(BigInteger)
    delta: Mapped[int] = mapped_column(BigInteger)  # votes minus what the row said before
    feed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TallyRow(Base):
    """The sum of current counts of one candidate, source, vote type and level."""

    __tablename__ = "tallies"

    race_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    candidate_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vote_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    rank: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    votes: Mapped[int] = mapped_column(BigInteger, default=0)
    units: Mapped[int] = mapped_column(Integer, default=0)  # units counted in votes
    changes: Mapped[int] = mapped_column(Integer, default=0)  # history rows behind it
    corrections: Mapped[int] = mapped_column(Integer, default=0)  # changes that lowered it
    last_update_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SeriesRow(Base):
    """A total-vote tally as it stood after each transaction that changed it: what charts read.

    caesar writes it in the same statement as the tally, so a race's totals
    over time cost one index probe per point and candidate, whatever the
    history's size.
    """

    __tablename__ = "series"
    __table_args__ = (Index("series_race_at", "race_id", "source_id", "rank", "at"),)

    race_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    rank: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The tally's last_update_at in seconds since 1970, as the database computes
    # it, so both dialects compare and bucket the same numbers.
    at: Mapped[float] = mapped_column(Double, primary_key=True)
    votes: Mapped[int] = mapped_column(BigInteger)


class RaceStatusRow(Base):
    """What a source last said of a race as a whole: its version, precincts, call, test flag."""

    __tablename__ = "race_status"

    race_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    feed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    precincts_reporting: Mapped[int | None] = mapped_column(Integer, nullable=True)
    precincts_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    winner_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CountScopeRow(Base):
    """The newest snapshot version that named every stored count of one race and source.

    A count's effective version is the larger of its row's and its scope's: a
    snapshot that carries all of a race's counts moves this one version
    instead of rewriting every unchanged count (rome/store/tally.py).
    """

    __tablename__ = "count_scopes"

    race_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    # The digest of the whole snapshot whose figures the race's counts are exactly, or
    # None: the same figures again only move the version (rome/store/tally.py).
    digest: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # With the digest: a digest of the race's count keys in order, then each count's votes
    # (8 bytes); a newer snapshot's units with the same keys and votes are not staged.
    unit_digests: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # How many counts of the race and source current_counts holds, kept by the apply: a
    # batch names all of them or not (rome/store/tally.py), without counting them.
    counts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RejectedRow(Base):
    """A payload notekeeper could not turn into a snapshot, kept with the reason."""

    __tablename__ = "rejected"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The dead letter this row records: its task id, or its body's hash
    # (rome.store.dead_letters). One row per message, whoever records it first.
    task_id: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (Index("rejected_task_id", "task_id", unique=True),)


class WipeoutGuessRow(Base):
    """One wrong admin token: which client sent it and when (seconds, the limiter's clock)."""

    __tablename__ = "wipeout_guesses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Double)

    __table_args__ = (Index("wipeout_guesses_client_at", "client", "at"),)


RESULT_TABLES = (CurrentRow, HistoryRow, TallyRow, SeriesRow, RaceStatusRow, CountScopeRow)


class PollStateRow(Base):
    """Where each live source's polling stands: what to ask next, what it last got, its lease."""

    __tablename__ = "poll_state"

    source_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    next_url: Mapped[str | None] = mapped_column(Text, nullable=True)  # AP's nextrequest
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)  # Clarity's
    county_versions: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    pending: Mapped[str] = mapped_column(Text, default="{}")  # JSON: counties to retry
    county_errors: Mapped[str] = mapped_column(Text, default="{}")  # JSON: county -> reason
    etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_modified: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recent: Mapped[str] = mapped_column(Text, default="[]")  # JSON: request times, last 60 s
    polls: Mapped[str] = mapped_column(Text, default="{}")  # JSON: polls by outcome
    last_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A poll holds the lease until it ends or the lease expires; a poll due
    # meanwhile is skipped, never queued behind it.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ArchiveRow(Base):
    """One fetch: which body (by its sha256, stored once, gzipped) came from where, when."""

    __tablename__ = "archive"
    __table_args__ = (Index("archive_source_id", "source_id", "id"),
                      Index("archive_sha256", "sha256"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[str | None] = mapped_column(String(100), nullable=True)  # the feed's own
    kind: Mapped[str] = mapped_column(String(16))  # feed | zip | control | error
    format: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str | None] = mapped_column(String(100), nullable=True)  # Clarity county
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)  # bytes as fetched
