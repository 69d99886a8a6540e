"""Create races, candidates, sources, tallies, ledger and rejected.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "races",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("race_id", sa.Integer, sa.ForeignKey("races.id"), nullable=False, index=True),
        sa.Column("first", sa.String(100), nullable=False),
        sa.Column("last", sa.String(100), nullable=False),
        sa.Column("party", sa.String(8), nullable=False),
    )
    op.create_table(
        "sources",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("race_id", sa.Integer, sa.ForeignKey("races.id"), nullable=False),
    )
    op.create_table(
        "tallies",
        sa.Column("candidate_id", sa.Integer, sa.ForeignKey("candidates.id"), primary_key=True),
        sa.Column("source_id", sa.String(16), sa.ForeignKey("sources.id"), primary_key=True),
        sa.Column("votes", sa.BigInteger, nullable=False),
        sa.Column("updates", sa.Integer, nullable=False),
        sa.Column("last_update_at", TZ, nullable=False),
    )
    # No foreign keys on the ledger: their checks were half the cost of applying
    # a batch (EXPLAIN ANALYZE, docs/benchmarks.md), and the tally upsert in the
    # same transaction checks the same (candidate, source) pairs once per group.
    op.create_table(
        "ledger",
        sa.Column("update_id", sa.String(120), primary_key=True),
        sa.Column("source_id", sa.String(16), nullable=False),
        sa.Column("candidate_id", sa.Integer, nullable=False, index=True),
        sa.Column("tick", sa.BigInteger, nullable=False),
        sa.Column("unit", sa.Integer, nullable=False),
        sa.Column("votes", sa.BigInteger, nullable=False),
        sa.Column("emitted_at", TZ, nullable=False),
        sa.Column("applied_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("votes >= 0", name="ledger_votes_not_negative"),
    )
    op.create_table(
        "rejected",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_id", sa.String(64), nullable=True, index=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )


def downgrade() -> None:
    for table in ("rejected", "ledger", "tallies", "sources", "candidates", "races"):
        op.drop_table(table)
