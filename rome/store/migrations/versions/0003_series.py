"""Keep each race's totals over time in a series; keep ingest's cost flat in the night's length.

Charts read the series (one row per total-vote tally and transaction that
changed it) instead of summing the history, so the history keeps only its
primary key. Existing histories are summed into the series once, here.
current_counts leaves room on each page for the next version of its rows
(fillfactor 70), so updates stay HOT and the table does not grow with them.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _epoch(dialect: str, column: str) -> str:
    # Seconds since 1970 exactly as rome.store.tally writes them for each dialect.
    if dialect == "sqlite":
        return f"round((julianday({column}) - 2440587.5) * 86400.0, 3)"
    return f"CAST(EXTRACT(epoch FROM {column}) AS DOUBLE PRECISION)"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "series",
        sa.Column("race_id", sa.Integer, primary_key=True),
        sa.Column("source_id", sa.String(16), primary_key=True),
        sa.Column("rank", sa.SmallInteger, primary_key=True),
        sa.Column("candidate_id", sa.Integer, primary_key=True),
        sa.Column("at", sa.Double, primary_key=True),
        sa.Column("votes", sa.BigInteger, nullable=False),
    )
    op.create_index("series_race_at", "series", ["race_id", "source_id", "rank", "at"])
    # Every transaction's changes of a total-vote tally, summed up to then.
    op.execute(f"""
        INSERT INTO series (race_id, source_id, rank, candidate_id, at, votes)
        SELECT race_id, source_id, rank, candidate_id, {_epoch(dialect, "applied_at")},
               sum(sum(delta)) OVER (PARTITION BY race_id, source_id, rank, candidate_id
                                     ORDER BY applied_at)
        FROM history WHERE vote_type = 'total'
        GROUP BY race_id, source_id, rank, candidate_id, applied_at
    """)
    op.drop_index("history_race_applied", table_name="history")
    if dialect == "postgresql":
        # Pages filled from now on; existing ones make room as their rows move.
        op.execute("ALTER TABLE current_counts SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE current_counts RESET (fillfactor)")
    op.create_index("history_race_applied", "history", ["race_id", "applied_at"])
    op.drop_index("series_race_at", table_name="series")
    op.drop_table("series")
