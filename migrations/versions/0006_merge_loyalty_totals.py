"""Merge the loyalty branch and the order-totals branch.

What this revision demonstrates: a merge revision (``down_revision`` is a tuple of both parents,
as ``alembic merge -m ... 0005a_loyalty_points 0005b_order_totals`` writes it) that makes the
graph single-headed again, so ``alembic upgrade head`` has one target. It changes no schema;
downgrading it "unmerges" back to the two parallel heads.

Revision ID: 0006_merge_loyalty_totals
Revises: 0005a_loyalty_points, 0005b_order_totals
Create Date: 2024-05-03 11:00:00
"""

from typing import Sequence, Union

# revision identifiers, used by Alembic.
revision: str = "0006_merge_loyalty_totals"
down_revision: Union[str, Sequence[str], None] = ("0005a_loyalty_points", "0005b_order_totals")
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
