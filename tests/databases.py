"""Fresh, real databases for tests: one new database per test on PostgreSQL, MariaDB or SQLite.

The machine's PostgreSQL (127.0.0.1:5432, trust auth) and MariaDB (127.0.0.1:3306, root without a
password) are required; when one is down the fixture fails with the reason (never a silent skip).
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pymysql
import pytest

PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
MARIADB_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


@dataclass(frozen=True)
class Database:
    """A database created for one test; ``url`` is a SQLAlchemy URL."""

    backend: str  # "postgresql" | "mariadb" | "sqlite"
    name: str
    url: str

    def connect(self) -> object:
        """A raw DBAPI connection (autocommit) for assertions outside the code under test."""
        if self.backend == "postgresql":
            conn = psycopg2.connect(**{**PG_ADMIN, "dbname": self.name})
            conn.autocommit = True
            return conn
        if self.backend == "mariadb":
            return pymysql.connect(**MARIADB_ADMIN, database=self.name, autocommit=True)
        return sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        conn = self.connect()
        try:
            cur = conn.cursor()  # type: ignore[attr-defined]
            cur.execute(sql)
            return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()  # type: ignore[attr-defined]

    def tables(self) -> set[str]:
        if self.backend == "postgresql":
            rows = self.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        elif self.backend == "mariadb":
            rows = self.query("SHOW TABLES")
        else:
            rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows}

    def versions(self) -> set[str]:
        """Revisions stamped in ``alembic_version`` (empty when the table does not exist)."""
        if "alembic_version" not in self.tables():
            return set()
        return {str(r[0]) for r in self.query("SELECT version_num FROM alembic_version")}


def _fail(reason: str) -> None:
    pytest.fail(reason, pytrace=False)


@contextlib.contextmanager
def fresh_postgresql() -> Iterator[Database]:
    name = f"ao_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(**PG_ADMIN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        _fail(f"PostgreSQL at 127.0.0.1:5432 is required and not reachable: {exc}")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database("postgresql", name, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}")
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def fresh_mariadb() -> Iterator[Database]:
    name = f"ao_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = pymysql.connect(**MARIADB_ADMIN, autocommit=True, connect_timeout=5)
    except pymysql.MySQLError as exc:
        _fail(f"MariaDB at 127.0.0.1:3306 is required and not reachable: {exc}")
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield Database("mariadb", name, f"mysql+pymysql://root@127.0.0.1:3306/{name}")
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@contextlib.contextmanager
def fresh_sqlite(directory: Path) -> Iterator[Database]:
    path = directory / f"ao_test_{uuid.uuid4().hex[:12]}.sqlite"
    yield Database("sqlite", path.name, f"sqlite:///{path}")


@contextlib.contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[Database]:
    if backend == "postgresql":
        with fresh_postgresql() as db:
            yield db
    elif backend == "mariadb":
        with fresh_mariadb() as db:
            yield db
    elif backend == "sqlite":
        with fresh_sqlite(tmp_path) as db:
            yield db
    else:  # pragma: no cover - a typo in a test parameter
        raise ValueError(backend)


@contextlib.contextmanager
def user_with_password(database: Database, password: str) -> Iterator[str]:
    """A new login user of ``database`` with ``password``; yields a URL for it (password quoted).

    PostgreSQL and MariaDB only: the tests that prove a password never leaks need one that the
    server really has (MariaDB checks it; the machine's PostgreSQL trusts local connections).
    """
    user = f"ao_{uuid.uuid4().hex[:8]}"
    secret = quote(password, safe="")
    if database.backend == "postgresql":
        admin = psycopg2.connect(**{**PG_ADMIN, "dbname": database.name})
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"CREATE ROLE {user} LOGIN PASSWORD %s", (password,))
            cur.execute(f"GRANT ALL ON SCHEMA public TO {user}")
        try:
            yield f"postgresql+psycopg2://{user}:{secret}@127.0.0.1/{database.name}"
        finally:
            with admin.cursor() as cur:
                cur.execute(f"DROP OWNED BY {user}; DROP ROLE {user}")
            admin.close()
    elif database.backend == "mariadb":
        admin = pymysql.connect(**MARIADB_ADMIN, autocommit=True)
        with admin.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL ON `{database.name}`.* TO '{user}'@'%'")
        try:
            yield f"mysql+pymysql://{user}:{secret}@127.0.0.1/{database.name}"
        finally:
            with admin.cursor() as cur:
                cur.execute(f"DROP USER '{user}'@'%'")
            admin.close()
    else:  # pragma: no cover - a typo in a test
        raise ValueError(f"no users on {database.backend}")
