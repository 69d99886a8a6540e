"""Store count_scopes.unit_digests uncompressed: 8 bytes a count, rewritten by every
version that changes a race, where compressing cost more than the bytes it saved.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # PostgreSQL only (SQLite has no storage modes). New values only: a race's digests
    # are rewritten with its next change.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE count_scopes ALTER COLUMN unit_digests SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE count_scopes ALTER COLUMN unit_digests SET STORAGE EXTENDED")
