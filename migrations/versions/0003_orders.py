"""Create the orders and order_items tables.

What this revision demonstrates: several tables in one revision with explicitly named foreign keys
(``fk_<table>_<column>_<referred table>``, well under MariaDB's 64-character limit), an
``ON DELETE CASCADE`` from order lines to their order, a composite unique constraint, an explicit
index on every foreign-key column (PostgreSQL does not create one; MariaDB would otherwise create
one named after the constraint and silently drop it again once another usable index appears, which
makes later index drops fail), and a downgrade that drops the tables in reverse dependency order.

Revision ID: 0003_orders
Revises: 0002_products
Create Date: 2024-05-01 09:20:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_orders"
down_revision: Union[str, Sequence[str], None] = "0002_products"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("reference", name="uq_orders_reference"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_orders_customer_id_customers"
        ),
    )
    op.create_table(
        "order_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_items"),
        sa.UniqueConstraint("order_id", "product_id", name="uq_order_items_order_id_product_id"),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name="fk_order_items_order_id_orders",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name="fk_order_items_product_id_products"
        ),
    )
    op.create_index("ix_orders_customer_id", "orders", ["customer_id"])
    # order_items.order_id is covered by the leading column of uq_order_items_order_id_product_id.
    op.create_index("ix_order_items_product_id", "order_items", ["product_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes and foreign keys with it (on MariaDB an index that backs a
    # foreign key cannot be dropped on its own, so no separate drop_index here).
    op.drop_table("order_items")
    op.drop_table("orders")
