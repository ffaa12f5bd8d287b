"""read indexes: finished cases and items by (state, finished_at), so the summary's recent window
and the console chart's last fourteen days are index ranges instead of scans of all history

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_cases_state_finished_at", "cases", ["state", "finished_at"])
    op.create_index("ix_plan_items_state_finished_at", "plan_items", ["state", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_plan_items_state_finished_at", table_name="plan_items")
    op.drop_index("ix_cases_state_finished_at", table_name="cases")
