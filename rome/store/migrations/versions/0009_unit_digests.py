"""Keep each race's digests per unit too, so a newer snapshot's unchanged units are not staged.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty at first: a scope gets them, with its digest, from the next whole snapshot.
    with op.batch_alter_table("count_scopes") as batch:
        batch.add_column(sa.Column("unit_digests", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("count_scopes") as batch:
        batch.drop_column("unit_digests")
