"""Poll live sources: each source's poll state and lease, and the index of every fetched body.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "poll_state",
        sa.Column("source_id", sa.String(16), primary_key=True),
        sa.Column("next_url", sa.Text, nullable=True),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("county_versions", sa.Text, nullable=False, server_default="{}"),
        sa.Column("pending", sa.Text, nullable=False, server_default="{}"),
        sa.Column("county_errors", sa.Text, nullable=False, server_default="{}"),
        sa.Column("etag", sa.Text, nullable=True),
        sa.Column("last_modified", sa.String(64), nullable=True),
        sa.Column("recent", sa.Text, nullable=False, server_default="[]"),
        sa.Column("polls", sa.Text, nullable=False, server_default="{}"),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
    )
    op.create_table(
        "archive",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source_id", sa.String(16), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.String(100), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(100), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.create_index("archive_source_id", "archive", ["source_id", "id"])
    op.create_index("archive_sha256", "archive", ["sha256"])


def downgrade() -> None:
    op.drop_index("archive_sha256", table_name="archive")
    op.drop_index("archive_source_id", table_name="archive")
    op.drop_table("archive")
    op.drop_table("poll_state")
