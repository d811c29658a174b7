"""Add product categories: a new table and a foreign key from products.

What this revision demonstrates: adding a column *with a foreign key* to an existing table. SQLite
cannot ``ALTER TABLE ... ADD CONSTRAINT``, so the change goes through ``op.batch_alter_table``:
on SQLite Alembic rebuilds the table (copy, drop, rename), on PostgreSQL and MariaDB it emits
ordinary ALTER TABLE statements. The column is nullable (existing products have no category) and
``ON DELETE SET NULL`` keeps products when a category goes away.

The downgrade drops the foreign key before its index and column (MariaDB refuses to drop an index
that still backs a foreign key). Offline (``--sql``) SQLite cannot reflect, so the batch gets the
table's shape at this revision through ``copy_from``.

Revision ID: 0008_categories
Revises: 0007_orders_created_at_index
Create Date: 2024-05-05 13:00:00
"""

from typing import Optional, Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008_categories"
down_revision: Union[str, Sequence[str], None] = "0007_orders_created_at_index"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _products(with_category: bool) -> Optional[sa.Table]:
    """The products table before/after this revision, for offline batch mode only (None: reflect)."""
    if not op.get_context().as_sql:
        return None
    metadata = sa.MetaData()
    sa.Table("categories", metadata, sa.Column("id", sa.Integer(), primary_key=True))
    columns_and_constraints = [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_products"),
        sa.UniqueConstraint("sku", name="uq_products_sku"),
    ]
    if with_category:
        columns_and_constraints += [
            sa.Column("category_id", sa.Integer(), nullable=True),
            sa.ForeignKeyConstraint(
                ["category_id"],
                ["categories.id"],
                name="fk_products_category_id_categories",
                ondelete="SET NULL",
            ),
            sa.Index("ix_products_category_id", "category_id"),
        ]
    return sa.Table("products", metadata, *columns_and_constraints)


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_categories"),
        sa.UniqueConstraint("name", name="uq_categories_name"),
    )
    with op.batch_alter_table("products", copy_from=_products(with_category=False)) as batch_op:
        batch_op.add_column(sa.Column("category_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_products_category_id_categories",
            "categories",
            ["category_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index("ix_products_category_id", ["category_id"])


def downgrade() -> None:
    with op.batch_alter_table("products", copy_from=_products(with_category=True)) as batch_op:
        batch_op.drop_constraint("fk_products_category_id_categories", type_="foreignkey")
        batch_op.drop_index("ix_products_category_id")
        batch_op.drop_column("category_id")
    op.drop_table("categories")
