"""Seed a few customers, products and orders.

What this revision demonstrates: data written by a migration through lightweight ``sa.table()``
constructs (``op.bulk_insert``, ``INSERT ... VALUES ((SELECT ...))``, ``DELETE ... WHERE ... IN``)
that render portably on PostgreSQL, MariaDB and SQLite and literally in offline ``--sql`` mode.
No primary key is hard-coded, so PostgreSQL sequences and MariaDB/SQLite auto-increment counters
stay correct; foreign keys are looked up by natural keys (e-mail, SKU, order reference).

The rows give the later revisions something to act on: 0005a_loyalty_points adds a NOT NULL
column to a table that has rows, and 0005b_order_totals backfills a column from these order lines.

The downgrade deletes exactly the seeded rows (by e-mail, SKU and order reference), children first.

Revision ID: 0004_seed_data
Revises: 0003_orders
Create Date: 2024-05-01 09:30:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004_seed_data"
down_revision: Union[str, Sequence[str], None] = "0003_orders"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Frozen, minimal views of the tables as they are at this revision: never import application
# models into a migration, they move on while this file must keep doing the same thing.
customers = sa.table(
    "customers",
    sa.column("id", sa.Integer),
    sa.column("email", sa.String),
    sa.column("name", sa.String),
)
products = sa.table(
    "products",
    sa.column("id", sa.Integer),
    sa.column("sku", sa.String),
    sa.column("name", sa.String),
    sa.column("price_cents", sa.Integer),
)
orders = sa.table(
    "orders",
    sa.column("id", sa.Integer),
    sa.column("reference", sa.String),
    sa.column("customer_id", sa.Integer),
)
order_items = sa.table(
    "order_items",
    sa.column("order_id", sa.Integer),
    sa.column("product_id", sa.Integer),
    sa.column("quantity", sa.Integer),
    sa.column("unit_price_cents", sa.Integer),
)

CUSTOMERS = [
    {"email": "ada@example.com", "name": "Ada Lovelace"},
    {"email": "grace@example.com", "name": "Grace Hopper"},
    {"email": "alan@example.com", "name": "Alan Turing"},
]
PRODUCTS = [
    {"sku": "TEA-001", "name": "Earl Grey tea, 100 g", "price_cents": 450},
    {"sku": "MUG-001", "name": "Enamel mug", "price_cents": 1200},
    {"sku": "BIS-001", "name": "Shortbread", "price_cents": 300},
]
# (order reference, customer e-mail)
ORDERS = [
    ("SO-1001", "ada@example.com"),
    ("SO-1002", "grace@example.com"),
    ("SO-1003", "alan@example.com"),  # an order without lines: its total backfills to 0
]
# (order reference, SKU, quantity); the unit price is copied from the product
ORDER_ITEMS = [
    ("SO-1001", "TEA-001", 2),
    ("SO-1001", "MUG-001", 1),
    ("SO-1002", "BIS-001", 3),
]


def upgrade() -> None:
    op.bulk_insert(customers, CUSTOMERS)
    op.bulk_insert(products, PRODUCTS)
    for reference, email in ORDERS:
        customer_id = sa.select(customers.c.id).where(customers.c.email == email)
        op.execute(
            orders.insert().values(reference=reference, customer_id=customer_id.scalar_subquery())
        )
    for reference, sku, quantity in ORDER_ITEMS:
        order_id = sa.select(orders.c.id).where(orders.c.reference == reference)
        product_id = sa.select(products.c.id).where(products.c.sku == sku)
        price = sa.select(products.c.price_cents).where(products.c.sku == sku)
        op.execute(
            order_items.insert().values(
                order_id=order_id.scalar_subquery(),
                product_id=product_id.scalar_subquery(),
                quantity=quantity,
                unit_price_cents=price.scalar_subquery(),
            )
        )


def downgrade() -> None:
    references = [reference for reference, _ in ORDERS]
    seeded_orders = sa.select(orders.c.id).where(orders.c.reference.in_(references))
    op.execute(order_items.delete().where(order_items.c.order_id.in_(seeded_orders)))
    op.execute(orders.delete().where(orders.c.reference.in_(references)))
    op.execute(products.delete().where(products.c.sku.in_([p["sku"] for p in PRODUCTS])))
    op.execute(customers.delete().where(customers.c.email.in_([c["email"] for c in CUSTOMERS])))
