"""The runner's database adapter: connections, the per-database lock, and error classification.

Works with SQLAlchemy 1.4 and 2.x and any DBAPI driver: driver errors are classified by duck
typing (``pgcode``, MySQL error numbers), never by importing a driver. It must not run DDL.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from alembic_operator.model.reasons import Reason

log = logging.getLogger("alembic_operator.runner")

# libpq's minimum: smaller values are raised to 2 seconds by libpq anyway.
_MIN_PG_CONNECT_TIMEOUT = 2
_PG_LOCK_NOT_AVAILABLE = "55P03"
_PG_QUERY_CANCELED = "57014"
_PG_CONNECTION_CLASS = "08"
_PG_SHUTDOWN_CODES = frozenset({"57P01", "57P02", "57P03"})
_LOCK_POLL_SECONDS = 0.1
_MYSQL_LOCK_WAIT_TIMEOUT = 1205
_MYSQL_STATEMENT_TIMEOUTS = frozenset({1969, 3024})
_MYSQL_CONNECTION_LOST = frozenset({2002, 2003, 2005, 2006, 2013, 2055})
_ADVISORY_LOCK_BACKENDS = ("postgresql", "mysql", "mariadb")


class RunnerFailure(Exception):
    """A classified failure: carries the reason the result will report."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# A URL without a driver gets SQLAlchemy's default driver, which differs between versions
# (SQLAlchemy 2.1 defaults PostgreSQL to psycopg 3): fall back to a driver the image has.
_DRIVER_FALLBACKS = (
    ("postgresql://", "psycopg2", "psycopg", "postgresql+psycopg2://"),
    ("postgres://", "psycopg2", "psycopg", "postgresql+psycopg2://"),
    ("mysql://", "pymysql", "MySQLdb", "mysql+pymysql://"),
    ("mariadb://", "pymysql", "MySQLdb", "mariadb+pymysql://"),
)


def with_available_driver(url: str) -> str:
    """``url`` with an explicit driver when its dialect's default driver is not installed."""
    for prefix, fallback, default, replacement in _DRIVER_FALLBACKS:
        if url.startswith(prefix) and not _importable(default) and _importable(fallback):
            return replacement + url[len(prefix) :]
    return url


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def dialect_of(url: str) -> str:
    return sa.engine.make_url(url).get_backend_name()


def configure_session_environment(
    url: str, *, connect_timeout: int, lock_timeout: str | None, statement_timeout: str | None
) -> None:
    """Session settings for every connection of this process, including env.py's own engine.

    libpq reads ``PGOPTIONS`` and ``PGCONNECT_TIMEOUT`` from the environment, so the settings
    reach connections the runner does not create itself.
    """
    if dialect_of(url) != "postgresql":
        return
    os.environ["PGCONNECT_TIMEOUT"] = str(max(connect_timeout, _MIN_PG_CONNECT_TIMEOUT))
    options = [os.environ.get("PGOPTIONS", "")]
    if lock_timeout:
        options.append(f"-c lock_timeout={lock_timeout}")
    if statement_timeout:
        options.append(f"-c statement_timeout={statement_timeout}")
    os.environ["PGOPTIONS"] = " ".join(o for o in options if o)


def create_engine(url: str, *, connect_timeout: int) -> Engine:
    """An engine that never logs bound parameters and fails fast when the server is away."""
    backend = dialect_of(url)
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args["connect_timeout"] = max(connect_timeout, _MIN_PG_CONNECT_TIMEOUT)
    elif backend in ("mysql", "mariadb"):
        connect_args["connect_timeout"] = connect_timeout
    return sa.create_engine(
        url, poolclass=NullPool, hide_parameters=True, connect_args=connect_args
    )


class DatabaseLock:
    """The per-database migration lock, held on a dedicated session for the whole run.

    PostgreSQL: ``pg_try_advisory_lock`` (database-scoped), polled until the bounded wait ends.
    MySQL/MariaDB: ``GET_LOCK`` (server-scoped, so the name includes the database).
    SQLite: no advisory locks; SQLite's own write lock serialises writers.
    """

    def __init__(self, engine: Engine, *, name: str, timeout_seconds: float) -> None:
        self._engine = engine
        self._name = name
        self._timeout = timeout_seconds
        self._connection: Connection | None = None
        self._release_sql: tuple[str, dict[str, Any]] | None = None
        self._early: EarlySession | None = None

    def open_session_early(self) -> None:
        """Start opening the lock's session in the background; :meth:`acquire` waits for it.

        Only the connection (an idle session: no lock, no query, no snapshot) is made early, so
        its round trips overlap the loading of the scripts; a connection error is still
        reported by :meth:`acquire`, and a run that ends before it never sees one.
        """
        if self._early is None and self._engine.dialect.name in _ADVISORY_LOCK_BACKENDS:
            self._early = EarlySession(self._engine)

    def acquire(self) -> None:
        backend = self._engine.dialect.name
        if backend not in _ADVISORY_LOCK_BACKENDS:
            log.info("%s has no advisory locks: relying on its own write lock", backend)
            return
        early, self._early = self._early, None
        conn = early.wait() if early is not None else connect(self._engine)
        self._connection = conn.execution_options(isolation_level="AUTOCOMMIT")
        log.info("waiting up to %.0fs for the migration lock %r", self._timeout, self._name)
        if backend == "postgresql":
            self._acquire_postgresql(self._connection)
        else:
            self._acquire_mysql(self._connection)
        log.info("migration lock %r acquired", self._name)

    def _acquire_postgresql(self, conn: Connection) -> None:
        # Poll instead of blocking in pg_advisory_lock: a blocked statement holds a snapshot,
        # and the lock holder's CREATE INDEX CONCURRENTLY waits for every snapshot to end — a
        # deadlock PostgreSQL does not detect. Between polls this session holds nothing.
        key = int.from_bytes(hashlib.sha256(self._name.encode()).digest()[:8], "big", signed=True)
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            except sa.exc.DBAPIError as exc:
                raise self._classified(exc) from None
            if got.scalar():
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunnerFailure(
                    Reason.LOCK_TIMEOUT,
                    f"another migration holds the lock {self._name!r}; "
                    f"gave up after {self._timeout:g}s",
                )
            time.sleep(min(_LOCK_POLL_SECONDS, remaining))
        self._release_sql = ("SELECT pg_advisory_unlock(:key)", {"key": key})

    def _acquire_mysql(self, conn: Connection) -> None:
        database = self._engine.url.database or ""
        name = f"{self._name}:{database}"[:64]
        try:
            got = conn.execute(
                sa.text("SELECT GET_LOCK(:name, :timeout)"),
                {"name": name, "timeout": self._timeout},
            ).scalar()
        except sa.exc.DBAPIError as exc:
            raise self._classified(exc) from None
        if got != 1:
            raise RunnerFailure(
                Reason.LOCK_TIMEOUT,
                f"another migration holds the lock {name!r}; gave up after {self._timeout:g}s",
            )
        self._release_sql = ("SELECT RELEASE_LOCK(:name)", {"name": name})

    def _classified(self, exc: sa.exc.DBAPIError) -> RunnerFailure:
        reason = classify_error(exc, connecting=False)
        if reason is Reason.LOCK_TIMEOUT:
            return RunnerFailure(
                reason,
                f"another migration holds the lock {self._name!r}; "
                f"gave up after {self._timeout:g}s",
            )
        return RunnerFailure(reason, f"could not take the migration lock: {describe(exc)}")

    def release(self) -> None:
        early, self._early = self._early, None
        if early is not None:  # the run ended before it needed the lock
            early.abandon()
        conn, self._connection = self._connection, None
        if conn is None:
            return
        try:
            if self._release_sql is not None:
                conn.execute(sa.text(self._release_sql[0]), self._release_sql[1])
        except sa.exc.DBAPIError:
            log.warning("could not release the migration lock; it ends with the session")
        finally:
            conn.close()


class EarlySession:
    """A connection opened by a background thread: :meth:`DatabaseLock.open_session_early`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._mutex = threading.Lock()
        self._abandoned = False
        self._connection: Connection | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._open, name="alembic-operator-lock-session", daemon=True
        )
        self._thread.start()

    def _open(self) -> None:
        try:
            conn = connect(self._engine)
        except BaseException as exc:  # handed to the main thread by wait()
            self._error = exc
            return
        with self._mutex:
            if not self._abandoned:
                self._connection = conn
                return
        conn.close()

    def wait(self) -> Connection:
        """The connection, or what connecting raised (``connect``'s RunnerFailure)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._connection is not None
        return self._connection

    def abandon(self) -> None:
        """Close the connection when it arrives; do not wait for it."""
        with self._mutex:
            self._abandoned = True
            conn, self._connection = self._connection, None
        if conn is not None:
            conn.close()


def connect(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except sa.exc.DBAPIError as exc:
        # A server error code wins even here: a tiny statement_timeout can cancel the
        # dialect's first queries on a connection that did reach the server.
        raise RunnerFailure(
            classify_error(exc, connecting=True),
            f"cannot connect to the database: {describe(exc)}",
        ) from None


def classify_error(exc: BaseException, *, connecting: bool) -> Reason:
    """The reason for a database error raised by SQLAlchemy/Alembic or the driver.

    A server's own error code wins (a statement timeout while reading the current revision is
    a StatementTimeout, not an unreachable database); only an error without one counts as
    "unreachable" while connecting.
    """
    dbapi = _dbapi_error(exc)
    if dbapi is None:
        return Reason.MIGRATION_FAILED
    orig = dbapi.orig
    coded = _reason_from_code(orig)
    if coded is not None:
        return coded
    if connecting and isinstance(dbapi, sa.exc.OperationalError):
        return Reason.DATABASE_UNREACHABLE
    if getattr(dbapi, "connection_invalidated", False):
        return Reason.DATABASE_UNREACHABLE
    # psycopg2 reports a dropped connection without a SQLSTATE.
    lost = "server closed the connection" in str(orig) or "could not connect" in str(orig)
    return Reason.DATABASE_UNREACHABLE if lost else Reason.MIGRATION_FAILED


def _reason_from_code(orig: object) -> Reason | None:
    pgcode = getattr(orig, "pgcode", None)
    if isinstance(pgcode, str):
        if pgcode == _PG_LOCK_NOT_AVAILABLE:
            return Reason.LOCK_TIMEOUT
        if pgcode == _PG_QUERY_CANCELED and "statement timeout" in str(orig):
            return Reason.STATEMENT_TIMEOUT
        if pgcode.startswith(_PG_CONNECTION_CLASS) or pgcode in _PG_SHUTDOWN_CODES:
            return Reason.DATABASE_UNREACHABLE
        return None
    errno = _mysql_errno(orig)
    if errno == _MYSQL_LOCK_WAIT_TIMEOUT:
        return Reason.LOCK_TIMEOUT
    if errno in _MYSQL_STATEMENT_TIMEOUTS:
        return Reason.STATEMENT_TIMEOUT
    if errno in _MYSQL_CONNECTION_LOST:
        return Reason.DATABASE_UNREACHABLE
    return None


def _dbapi_error(exc: BaseException | None) -> sa.exc.DBAPIError | None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sa.exc.DBAPIError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _mysql_errno(orig: object) -> int | None:
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def describe(exc: BaseException) -> str:
    """A one-paragraph description of an error (the driver's message, without SQL parameters)."""
    dbapi = _dbapi_error(exc)
    if dbapi is not None:
        text = str(dbapi.orig).strip() or type(dbapi.orig).__name__
        statement = (dbapi.statement or "").strip()
        if statement:
            text += f" [SQL: {statement[:500]}]"
        return text
    if isinstance(exc, SystemExit):
        return (
            f"SystemExit({exc.code!r}): a migration script or env.py called sys.exit() "
            "(or a command-line tool in standalone mode); the migration did not finish"
        )
    return f"{type(exc).__name__}: {exc}".strip()
