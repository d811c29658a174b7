"""Add customers.loyalty_points, NOT NULL with a server default.

What this revision demonstrates:

- one side of a branch: it and 0005b_order_totals both revise 0004_seed_data, and this side carries
  the branch label ``loyalty``, so it can be addressed by name (from 0004_seed_data,
  ``alembic upgrade loyalty@+1`` applies just this revision). Alembic hands a label down to the
  descendants, so ``loyalty@head`` is the graph's single head;
- adding a NOT NULL column to a table that already has rows: the server default fills the existing
  rows in the same ALTER TABLE, and the old application version (which does not know the column)
  can keep inserting customers while the new one rolls out;
- a downgrade that drops a column through ``op.batch_alter_table``, which SQLite needs (it
  rebuilds the table); on PostgreSQL and MariaDB the batch emits a plain ALTER TABLE. In offline
  ``--sql`` mode SQLite cannot reflect the table, so the batch gets the table's shape at this
  revision through ``copy_from``.

Revision ID: 0005a_loyalty_points
Revises: 0004_seed_data
Create Date: 2024-05-02 10:00:00
"""

from typing import Optional, Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005a_loyalty_points"
down_revision: Union[str, Sequence[str], None] = "0004_seed_data"
branch_labels: Union[str, Sequence[str], None] = ("loyalty",)
depends_on: Union[str, Sequence[str], None] = None


def _customers_at_this_revision() -> Optional[sa.Table]:
    """The customers table as of this revision, for offline batch mode only (None: reflect)."""
    if not op.get_context().as_sql:
        return None
    return sa.Table(
        "customers",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.Column("loyalty_points", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.UniqueConstraint("email", name="uq_customers_email"),
    )


def upgrade() -> None:
    op.add_column(
        "customers",
        sa.Column("loyalty_points", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    with op.batch_alter_table("customers", copy_from=_customers_at_this_revision()) as batch_op:
        batch_op.drop_column("loyalty_points")
