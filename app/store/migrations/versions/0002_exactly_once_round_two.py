"""exactly-once, round two: when a case read its inventory, when a batch's send became uncertain,
one shared request budget per IGA target, and a case's outcome when it ends without failing

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inventoried_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.Text(), nullable=True))
    with op.batch_alter_table("iga_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "rate_budgets",
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("next_free_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target"),
    )


def downgrade() -> None:
    op.drop_table("rate_budgets")
    with op.batch_alter_table("iga_requests", schema=None) as batch_op:
        batch_op.drop_column("uncertain_since")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("outcome")
        batch_op.drop_column("inventoried_at")
