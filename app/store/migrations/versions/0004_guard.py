"""blast-radius guard: batches of held cases per target, and the batch a case waits in

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guard_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("tripped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_leavers", sa.Integer(), nullable=False),
        sa.Column("window_seconds", sa.Float(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_guard_batches_target", "guard_batches", ["target"])
    op.create_index("ix_guard_batches_state", "guard_batches", ["state"])
    # At most one batch per target waits for an operator; a second trip joins it.
    op.create_index(
        "uq_guard_batches_one_held",
        "guard_batches",
        ["target"],
        unique=True,
        sqlite_where=sa.text("state = 'held'"),
        postgresql_where=sa.text("state = 'held'"),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guard_batch_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_cases_guard_batch_id", ["guard_batch_id"])
        batch_op.create_foreign_key("fk_cases_guard_batch_id", "guard_batches", ["guard_batch_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint("fk_cases_guard_batch_id", type_="foreignkey")
        batch_op.drop_index("ix_cases_guard_batch_id")
        batch_op.drop_column("guard_batch_id")
    op.drop_index("uq_guard_batches_one_held", table_name="guard_batches")
    op.drop_table("guard_batches")
