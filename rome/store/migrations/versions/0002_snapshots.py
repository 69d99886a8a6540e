"""Replace the delta ledger with cumulative snapshots: current, history, tallies, race status.

The delta ledger's rows cannot become snapshot rows (a delta has no version
and no cumulative figure), so results start afresh; rejected payloads stay.
Races, candidates and units now come from the feeds, keyed by text.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    for table in ("ledger", "tallies", "sources", "candidates", "races"):
        op.drop_table(table)
    op.create_table(
        "sources",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("started_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "races",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(240), nullable=False, unique=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default=""),
        sa.Column("office", sa.String(300), nullable=False, server_default=""),
    )
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(480), nullable=False, unique=True),
        sa.Column("race_id", sa.Integer, sa.ForeignKey("races.id"), nullable=False, index=True),
        sa.Column("first", sa.String(300), nullable=False),
        sa.Column("last", sa.String(300), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
    )
    op.create_table(
        "units",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(240), nullable=False, unique=True),
        sa.Column("source_id", sa.String(16), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("rank", sa.SmallInteger, nullable=False),
        sa.Column("parent_id", sa.Integer, nullable=True),
    )
    # No foreign keys on the result tables: checking them cost half the apply
    # time of the delta ledger (docs/benchmarks.md); caesar resolves every id
    # from the reference tables in the same transaction.
    op.create_table(
        "current_counts",
        sa.Column("race_id", sa.Integer, primary_key=True),
        sa.Column("source_id", sa.String(16), primary_key=True),
        sa.Column("unit_id", sa.Integer, primary_key=True),
        sa.Column("candidate_id", sa.Integer, primary_key=True),
        sa.Column("vote_type", sa.String(32), primary_key=True),
        sa.Column("rank", sa.SmallInteger, nullable=False),
        sa.Column("votes", sa.BigInteger, nullable=False),
        sa.Column("prev_votes", sa.BigInteger, nullable=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("feed_at", TZ, nullable=False),
        sa.Column("applied_at", TZ, nullable=False),
        sa.CheckConstraint("votes >= 0", name="current_votes_not_negative"),
    )
    op.create_table(
        "history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("race_id", sa.Integer, nullable=False),
        sa.Column("source_id", sa.String(16), nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("candidate_id", sa.Integer, nullable=False),
        sa.Column("vote_type", sa.String(32), nullable=False),
        sa.Column("rank", sa.SmallInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("votes", sa.BigInteger, nullable=False),
        sa.Column("delta", sa.BigInteger, nullable=False),
        sa.Column("feed_at", TZ, nullable=False),
        sa.Column("applied_at", TZ, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # The catalog's races and candidates take ids below 1000; feeds' get the rest.
        for table in ("races", "candidates"):
            op.execute(f"ALTER SEQUENCE {table}_id_seq RESTART WITH 1000")
    op.create_index("history_race_applied", "history", ["race_id", "applied_at"])
    op.create_table(
        "tallies",
        sa.Column("race_id", sa.Integer, primary_key=True),
        sa.Column("source_id", sa.String(16), primary_key=True),
        sa.Column("candidate_id", sa.Integer, primary_key=True),
        sa.Column("vote_type", sa.String(32), primary_key=True),
        sa.Column("rank", sa.SmallInteger, primary_key=True),
        sa.Column("votes", sa.BigInteger, nullable=False),
        sa.Column("units", sa.Integer, nullable=False),
        sa.Column("changes", sa.Integer, nullable=False),
        sa.Column("corrections", sa.Integer, nullable=False),
        sa.Column("last_update_at", TZ, nullable=False),
    )
    op.create_table(
        "race_status",
        sa.Column("race_id", sa.Integer, primary_key=True),
        sa.Column("source_id", sa.String(16), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("feed_at", TZ, nullable=False),
        sa.Column("precincts_reporting", sa.Integer, nullable=True),
        sa.Column("precincts_total", sa.Integer, nullable=True),
        sa.Column("winner_id", sa.Integer, nullable=True),
        sa.Column("test", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the delta ledger cannot be rebuilt from snapshots")
