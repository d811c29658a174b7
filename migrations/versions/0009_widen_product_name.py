"""Widen products.name from VARCHAR(100) to VARCHAR(200).

What this revision demonstrates: changing a column's type with ``alter_column`` in a way that works
everywhere. MariaDB's ``ALTER TABLE ... MODIFY`` restates the whole column, so ``existing_nullable``
(and ``existing_type``) must be given or the column would silently become nullable; SQLite needs
``op.batch_alter_table`` (it rebuilds the table, keeping the foreign key and index added by
0008_categories; offline it gets the table's shape through ``copy_from``). Widening is safe for
the application version still running during the rollout.

The downgrade narrows the column back; PostgreSQL and MariaDB in strict mode refuse it (rather
than truncate) while a name longer than 100 characters exists.

Revision ID: 0009_widen_product_name
Revises: 0008_categories
Create Date: 2024-05-06 14:00:00
"""

from typing import Optional, Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009_widen_product_name"
down_revision: Union[str, Sequence[str], None] = "0008_categories"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _products(name_length: int) -> Optional[sa.Table]:
    """The products table with the given name length, for offline batch mode only (None: reflect)."""
    if not op.get_context().as_sql:
        return None
    metadata = sa.MetaData()
    sa.Table("categories", metadata, sa.Column("id", sa.Integer(), primary_key=True))
    return sa.Table(
        "products",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(name_length), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_products"),
        sa.UniqueConstraint("sku", name="uq_products_sku"),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name="fk_products_category_id_categories",
            ondelete="SET NULL",
        ),
        sa.Index("ix_products_category_id", "category_id"),
    )


def upgrade() -> None:
    with op.batch_alter_table("products", copy_from=_products(100)) as batch_op:
        batch_op.alter_column(
            "name",
            existing_type=sa.String(100),
            type_=sa.String(200),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("products", copy_from=_products(200)) as batch_op:
        batch_op.alter_column(
            "name",
            existing_type=sa.String(200),
            type_=sa.String(100),
            existing_nullable=False,
        )
