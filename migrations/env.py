"""Alembic environment for the example "shop" application.

Where the database comes from, in order:

1. ``config.attributes["connection"]``: a SQLAlchemy ``Connection`` handed over by a caller that
   drives Alembic through its command API (Alembic cookbook, "Sharing a Connection across one or
   more programmatic migration commands"). It is used as is and never closed here. Hand over a
   connection that is *not* inside a transaction (``engine.connect()``, not ``engine.begin()``),
   otherwise Alembic treats the caller's transaction as external and ``transaction_per_migration``
   and the autocommit block of the concurrent index cannot do their job.
2. the ``sqlalchemy.url`` option, when a caller set it (``Config.set_main_option``, with ``%``
   escaped as ``%%``); alembic.ini leaves it empty on purpose;
3. the ``DATABASE_URL`` environment variable.

The URL is never printed or logged by this file, and the error raised when none is configured
does not echo any configuration value.

Every revision runs in its own transaction (``transaction_per_migration=True``) online and offline:
on PostgreSQL a failure in revision N rolls back N alone and leaves the database stamped at N-1,
and the revision that builds an index ``CONCURRENTLY`` can step out of the transaction without
committing half of someone else's work.

Compatible with Alembic >= 1.7 and SQLAlchemy >= 1.4 (including 2.x).
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlalchemy.engine import Connection

config = context.config

if config.config_file_name is not None:
    # Keep loggers created before this point (e.g. by a program embedding Alembic) working.
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# The example migrations are written by hand; no autogenerate metadata.
target_metadata = None

URL_ENV_VAR = "DATABASE_URL"


class DatabaseURLNotConfiguredError(RuntimeError):
    """Neither ``sqlalchemy.url`` nor ``DATABASE_URL`` is set (and no connection was passed)."""


def _database_url() -> str:
    """The SQLAlchemy URL from ``sqlalchemy.url`` if non-empty, else from ``DATABASE_URL``."""
    url = (config.get_main_option("sqlalchemy.url") or "").strip()
    if url:
        return url
    url = os.environ.get(URL_ENV_VAR, "").strip()
    if url:
        return url
    raise DatabaseURLNotConfiguredError(
        "No database configured for the shop migrations: set the DATABASE_URL environment "
        "variable (e.g. DATABASE_URL=sqlite:////tmp/shop.db), set the 'sqlalchemy.url' option "
        "of the Alembic config, or pass a SQLAlchemy Connection in "
        "config.attributes['connection']."
    )


def _shared_connection() -> Connection | None:
    connection = config.attributes.get("connection")
    if connection is None:
        return None
    if not isinstance(connection, Connection):
        raise TypeError(
            "config.attributes['connection'] must be a sqlalchemy.engine.Connection, "
            f"not {type(connection).__name__}"
        )
    return connection


def run_migrations_offline() -> None:
    """Render SQL to the output buffer (``alembic upgrade head --sql``) without connecting."""
    shared = _shared_connection()
    options = {
        "target_metadata": target_metadata,
        "literal_binds": True,
        "dialect_opts": {"paramstyle": "named"},
        "transaction_per_migration": True,
    }
    if shared is not None:
        # Same precedence as online; only the dialect is needed to render SQL.
        context.configure(dialect_name=shared.dialect.name, **options)
    else:
        context.configure(url=_database_url(), **options)

    with context.begin_transaction():
        context.run_migrations()


def _run_with_connection(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transaction_per_migration=True,
    )
    # With transaction_per_migration this outer block is a no-op on transactional-DDL backends;
    # each revision gets its own BEGIN/COMMIT.
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations against a live database."""
    shared = _shared_connection()
    if shared is not None:
        _run_with_connection(shared)
        return

    # Keep any other `sqlalchemy.*` options of the ini section (e.g. sqlalchemy.echo), but take the
    # URL from _database_url() so that DATABASE_URL needs no %-escaping.
    options = dict(config.get_section(config.config_ini_section) or {})
    options["sqlalchemy.url"] = _database_url()
    connectable = engine_from_config(options, prefix="sqlalchemy.", poolclass=pool.NullPool)
    try:
        with connectable.connect() as connection:
            _run_with_connection(connection)
    finally:
        connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
