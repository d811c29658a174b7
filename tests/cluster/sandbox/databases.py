"""The sandbox's database: a fresh SQLite file by default; a server database created if missing.

``--database-url postgresql+psycopg2://postgres@127.0.0.1/shop`` (or ``mysql+pymysql://...``)
names a database that may not exist yet: the sandbox creates it on that server (through the
server's maintenance database) and says so, as a platform team provisions one before the first
migration. The URL itself is never printed (it may hold a password); only host and name.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def default_database_url(workdir: Path) -> str:
    """A fresh SQLite database in the work directory (the previous run's is removed)."""
    path = workdir / "shop.sqlite"
    path.unlink(missing_ok=True)
    return f"sqlite:///{path}"


def ensure_database(url: str) -> str | None:
    """Create the database ``url`` names when it does not exist; a sentence saying so, or None."""
    target = make_url(url)
    backend, name = target.get_backend_name(), target.database
    if backend == "sqlite" or not name:
        return None
    if backend == "postgresql":
        admin, exists_sql = (
            target.set(database="postgres"),
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
        )
        create = f'CREATE DATABASE "{name}"'
    elif backend in ("mysql", "mariadb"):
        admin, exists_sql = (
            target.set(database=None),
            sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"),
        )
        create = f"CREATE DATABASE `{name}`"
    else:
        return None
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.execute(exists_sql, {"name": name}).first() is not None:
                return None
            conn.execute(sa.text(create))
    finally:
        engine.dispose()
    return f"created database {name!r} on {backend} at {target.host or 'localhost'}"
