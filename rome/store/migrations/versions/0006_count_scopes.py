"""Keep one version per race and source, so an unchanged count is not rewritten to move its own.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty at first: every count's own version stands until a snapshot names all of its race.
    op.create_table(
        "count_scopes",
        sa.Column("race_id", sa.Integer, primary_key=True),
        sa.Column("source_id", sa.String(16), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    # The versions the scopes held go back into the counts they cover.
    op.execute(
        "UPDATE current_counts SET version = (SELECT s.version FROM count_scopes s "
        "WHERE s.race_id = current_counts.race_id AND s.source_id = current_counts.source_id) "
        "WHERE version < (SELECT s.version FROM count_scopes s "
        "WHERE s.race_id = current_counts.race_id AND s.source_id = current_counts.source_id)"
    )
    op.drop_table("count_scopes")
