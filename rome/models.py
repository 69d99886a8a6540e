"""Declare Rome's tables; Alembic migrations in rome/migrations create them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RaceRow(Base):
    __tablename__ = "races"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))


class CandidateRow(Base):
    __tablename__ = "candidates"

    # Ids are unique across races: the original reused 1, 2, ... in every race.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    race_id: Mapped[int] = mapped_column(ForeignKey("races.id"), index=True)
    first: Mapped[str] = mapped_column(String(100))
    last: Mapped[str] = mapped_column(String(100))
    party: Mapped[str] = mapped_column(String(8))


class SourceRow(Base):
    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    race_id: Mapped[int] = mapped_column(ForeignKey("races.id"))


class TallyRow(Base):
    """Votes one source has reported for one candidate: the sum of its ledger rows."""

    __tablename__ = "tallies"

    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    votes: Mapped[int] = mapped_column(BigInteger, default=0)
    updates: Mapped[int] = mapped_column(Integer, default=0)
    last_update_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LedgerRow(Base):
    """One applied update; its primary key is what makes each update count once."""

    __tablename__ = "ledger"

    update_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    # Not foreign keys (see the migration): the tally upsert checks the same ids.
    source_id: Mapped[str] = mapped_column(String(16))
    candidate_id: Mapped[int] = mapped_column(Integer, index=True)
    tick: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[int] = mapped_column(Integer, default=0)
    votes: Mapped[int] = mapped_column(BigInteger)
    emitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RejectedRow(Base):
    """A payload notekeeper could not turn into updates, kept with the reason."""

    __tablename__ = "rejected"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
