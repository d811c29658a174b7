"""Index orders.created_at (for the daily sales report), concurrently on PostgreSQL.

What this revision demonstrates: building an index on a live, busy table without blocking writes.

- PostgreSQL: ``CREATE INDEX CONCURRENTLY`` cannot run inside a transaction block, so it runs
  inside ``op.get_context().autocommit_block()`` (which commits the revision's transaction first;
  env.py uses ``transaction_per_migration=True`` so that nothing but this revision is affected).
  The downgrade drops the index ``CONCURRENTLY`` the same way.
- MariaDB and SQLite: a plain ``CREATE INDEX`` (InnoDB builds secondary indexes online anyway).

The dialect is read from ``op.get_context().dialect``, which also works in offline ``--sql`` mode
(``op.get_bind()`` is only a real connection online). Offline PostgreSQL output therefore shows
``COMMIT;`` / ``CREATE INDEX CONCURRENTLY ...`` / ``BEGIN;``.

If a concurrent build fails, PostgreSQL leaves an INVALID index behind: drop it
(``DROP INDEX CONCURRENTLY ix_orders_created_at``) before retrying.

Revision ID: 0007_orders_created_at_index
Revises: 0006_merge_loyalty_totals
Create Date: 2024-05-04 12:00:00
"""

from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007_orders_created_at_index"
down_revision: Union[str, Sequence[str], None] = "0006_merge_loyalty_totals"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

INDEX = "ix_orders_created_at"


def _is_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    if _is_postgresql():
        with op.get_context().autocommit_block():
            op.create_index(INDEX, "orders", ["created_at"], postgresql_concurrently=True)
    else:
        op.create_index(INDEX, "orders", ["created_at"])


def downgrade() -> None:
    if _is_postgresql():
        with op.get_context().autocommit_block():
            op.drop_index(INDEX, table_name="orders", postgresql_concurrently=True)
    else:
        op.drop_index(INDEX, table_name="orders")
