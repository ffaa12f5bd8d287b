"""jobs never reuse an ID: on SQLite a deleted job's rowid could go to the next job, and a worker
still holding a claim on the old one (same ID, same claim count) passed the fence on the new one

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # PostgreSQL sequences never hand an ID out twice
        with op.batch_alter_table("jobs", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("jobs", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
