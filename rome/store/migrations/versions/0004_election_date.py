"""Keep the day each race's election is on, where its feed says, to tell same-named races apart.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Races stored before start with "" and take the day of the next dated snapshot.
    with op.batch_alter_table("races") as batch:
        batch.add_column(sa.Column("election_date", sa.String(10), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("races") as batch:
        batch.drop_column("election_date")
