"""Add orders.total_cents and backfill it from the order lines.

What this revision demonstrates:

- the other side of the branch started at 0004_seed_data (no branch label; it is reached through
  the merge 0006_merge_loyalty_totals or by its id);
- a data migration: the new column is filled from existing data with one set-based, portable
  ``UPDATE orders SET total_cents = (SELECT COALESCE(SUM(...), 0) FROM order_items WHERE ...)``
  built from ``sa.table()`` constructs (works on PostgreSQL, MariaDB and SQLite, online and in
  offline ``--sql`` mode);
- expand before contract: the column is added nullable, so the application version still running
  during the rollout (which does not write it) keeps working. Making it NOT NULL belongs in a later
  release, once every writer sets it;
- a downgrade through ``op.batch_alter_table`` (SQLite rebuilds the table; offline it gets the
  table's shape through ``copy_from``).

Revision ID: 0005b_order_totals
Revises: 0004_seed_data
Create Date: 2024-05-02 10:05:00
"""

from typing import Optional, Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005b_order_totals"
down_revision: Union[str, Sequence[str], None] = "0004_seed_data"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

orders = sa.table("orders", sa.column("id", sa.Integer), sa.column("total_cents", sa.Integer))
order_items = sa.table(
    "order_items",
    sa.column("order_id", sa.Integer),
    sa.column("quantity", sa.Integer),
    sa.column("unit_price_cents", sa.Integer),
)


def _orders_at_this_revision() -> Optional[sa.Table]:
    """The orders table as of this revision, for offline batch mode only (None: reflect)."""
    if not op.get_context().as_sql:
        return None
    metadata = sa.MetaData()
    sa.Table("customers", metadata, sa.Column("id", sa.Integer(), primary_key=True))
    return sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.Column("total_cents", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("reference", name="uq_orders_reference"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_orders_customer_id_customers"
        ),
    )


def upgrade() -> None:
    op.add_column("orders", sa.Column("total_cents", sa.Integer(), nullable=True))

    line_total = order_items.c.quantity * order_items.c.unit_price_cents
    order_total = (
        sa.select(sa.func.coalesce(sa.func.sum(line_total), 0))
        .where(order_items.c.order_id == orders.c.id)
        .scalar_subquery()
    )
    # Only rows still missing a total: re-running the statement after a partial failure (or on a
    # MariaDB where the ADD COLUMN above already committed) does not redo finished work.
    op.execute(
        orders.update().where(orders.c.total_cents.is_(None)).values(total_cents=order_total)
    )


def downgrade() -> None:
    with op.batch_alter_table("orders", copy_from=_orders_at_this_revision()) as batch_op:
        batch_op.drop_column("total_cents")
