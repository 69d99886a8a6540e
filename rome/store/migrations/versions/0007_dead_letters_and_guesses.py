"""Key each rejected row by its message, and keep wrong admin tokens for the wipeout limit.

`rejected.task_id` names the dead letter a row records (the task id, or the
body's hash for a message without one): unique, so the worker and the
dead-letter recorder record each message once. `wipeout_guesses` holds each
wrong admin token's client and time: every web process counts the same ones.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("rejected") as batch:
        batch.add_column(sa.Column("task_id", sa.String(255), nullable=True))
    op.create_index("rejected_task_id", "rejected", ["task_id"], unique=True)
    op.create_table(
        "wipeout_guesses",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
    )
    op.create_index("wipeout_guesses_client_at", "wipeout_guesses", ["client", "at"])


def downgrade() -> None:
    op.drop_index("wipeout_guesses_client_at", table_name="wipeout_guesses")
    op.drop_table("wipeout_guesses")
    op.drop_index("rejected_task_id", table_name="rejected")
    with op.batch_alter_table("rejected") as batch:
        batch.drop_column("task_id")
