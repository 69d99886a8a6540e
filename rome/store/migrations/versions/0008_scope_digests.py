"""Keep a digest per race and source, so a snapshot with the same figures is not staged at all.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty at first: a scope gets its digest from the next whole snapshot of its race.
    with op.batch_alter_table("count_scopes") as batch:
        batch.add_column(sa.Column("digest", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("count_scopes") as batch:
        batch.drop_column("digest")
