"""The runner's database adapter: connections, session settings, and error classification.

Works with SQLAlchemy 1.4 and 2.x and any DBAPI driver: driver errors are classified by duck
typing (``pgcode``, MySQL error numbers), never by importing a driver. It must not run DDL.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
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
_MYSQL_LOCK_WAIT_TIMEOUT = 1205
_MYSQL_STATEMENT_TIMEOUTS = frozenset({1969, 3024})
_MYSQL_CONNECTION_LOST = frozenset({2002, 2003, 2005, 2006, 2013, 2055})


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


def usable_url(url: str) -> str:
    """``url`` with a driver that is installed, or ``InvalidConfiguration`` (quoting no secret).

    Refused before any connection: a string SQLAlchemy cannot parse, an unknown dialect or a
    driver the image lacks, and a server URL without a host and a database (libpq would
    connect to its default database over the default socket).
    """
    try:
        parsed = sa.engine.make_url(url)
    except Exception:  # its message quotes the URL
        raise RunnerFailure(
            Reason.INVALID_CONFIGURATION, "DATABASE_URL is not a URL SQLAlchemy can parse"
        ) from None
    name = parsed.drivername
    try:
        url = with_available_driver(url)
        dialect: Any = sa.engine.make_url(url).get_dialect()
        # SQLAlchemy 2 names it import_dbapi; 1.4 dbapi (both class methods).
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()
    except Exception as exc:  # NoSuchModuleError, ImportError
        raise RunnerFailure(
            Reason.INVALID_CONFIGURATION,
            f"DATABASE_URL names the dialect/driver {name!r}, which this image cannot load "
            f"({type(exc).__name__}); install the driver or fix the URL's scheme",
        ) from None
    host = parsed.host or parsed.query.get("host") or parsed.query.get("unix_socket")
    if parsed.get_backend_name() != "sqlite" and not host and not parsed.database:
        raise RunnerFailure(
            Reason.INVALID_CONFIGURATION,
            "DATABASE_URL names neither a host nor a database; refusing to migrate the "
            "driver's default database",
        )
    return url


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def dialect_of(url: str) -> str:
    return sa.engine.make_url(url).get_backend_name()


def configure_session_environment(
    url: str,
    *,
    connect_timeout: int,
    lock_timeout: str | None,
    statement_timeout: str | None,
    lock_wait_seconds: float,
) -> None:
    """Session settings for every connection of this process, including env.py's own engine.

    PostgreSQL: libpq reads ``PGOPTIONS`` and ``PGCONNECT_TIMEOUT`` from the environment, so the
    settings reach connections the runner does not create itself. MySQL/MariaDB have no such
    variable: every new DBAPI connection of a MySQL driver gets ``lock_wait_timeout`` (metadata
    locks: an ``ALTER TABLE`` behind a reader's open transaction, by default a day) and
    ``innodb_lock_wait_timeout`` from ``lock_timeout`` (else ``lock_wait_seconds``).
    """
    backend = dialect_of(url)
    if backend in ("mysql", "mariadb"):
        seconds = pg_duration_seconds(lock_timeout) if lock_timeout else lock_wait_seconds
        _set_mysql_lock_wait(max(1, math.ceil(seconds)))
        return
    if backend != "postgresql":
        return
    os.environ["PGCONNECT_TIMEOUT"] = str(max(connect_timeout, _MIN_PG_CONNECT_TIMEOUT))
    options = [os.environ.get("PGOPTIONS", "")]
    if lock_timeout:
        options.append(f"-c lock_timeout={lock_timeout}")
    if statement_timeout:
        options.append(f"-c statement_timeout={statement_timeout}")
    os.environ["PGOPTIONS"] = " ".join(o for o in options if o)


_PG_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "": 0.001}
_MYSQL_DRIVERS = ("pymysql", "MySQLdb", "mysql", "mariadb")


def pg_duration_seconds(value: str) -> float:
    """A PostgreSQL duration (``500ms``, ``5s``, ``2min``, ``1h``; bare numbers are ms)."""
    digits = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(digits) * _PG_UNITS[value[len(digits) :]]


def _set_mysql_lock_wait(seconds: int) -> None:
    statement = f"SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}"

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if type(dbapi_connection).__module__.split(".")[0] not in _MYSQL_DRIVERS:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(statement)
        finally:
            cursor.close()

    sa.event.listen(sa.pool.Pool, "connect", on_connect)


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


def connect(engine: Engine) -> Connection:
    try:
        return engine.connect()
    except UnicodeError as exc:  # PyMySQL sends the user and password as latin-1
        raise RunnerFailure(
            Reason.INVALID_CONFIGURATION,
            "the database driver cannot encode the user name or password of DATABASE_URL "
            f"({type(exc).__name__}, {getattr(exc, 'encoding', '?')}); use characters its "
            "protocol supports",
        ) from None
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


# libpq reports connection-time refusals without a SQLSTATE: their text is all there is.
_PG_REFUSALS = (
    (
        re.compile(r'password authentication failed|role "[^"]*" does not exist|no pg_hba\.conf'),
        Reason.AUTHENTICATION_FAILED,
    ),
    (re.compile(r'database "[^"]*" does not exist'), Reason.DATABASE_NOT_FOUND),
)
_PG_CODES = {
    "28P01": Reason.AUTHENTICATION_FAILED,  # invalid_password
    "28000": Reason.AUTHENTICATION_FAILED,  # invalid_authorization_specification
    "3D000": Reason.DATABASE_NOT_FOUND,  # invalid_catalog_name
}
_MYSQL_CODES = {
    1044: Reason.AUTHENTICATION_FAILED,  # access denied to the database
    1045: Reason.AUTHENTICATION_FAILED,  # access denied (wrong user or password)
    1698: Reason.AUTHENTICATION_FAILED,  # access denied (auth plugin)
    1049: Reason.DATABASE_NOT_FOUND,  # unknown database
}


def _reason_from_code(orig: object) -> Reason | None:
    pgcode = getattr(orig, "pgcode", None)
    if pgcode is None and type(orig).__module__.split(".")[0] in ("psycopg2", "psycopg"):
        for pattern, reason in _PG_REFUSALS:
            if pattern.search(str(orig)):
                return reason
    if isinstance(pgcode, str) and pgcode in _PG_CODES:
        return _PG_CODES[pgcode]
    if isinstance(pgcode, str):
        if pgcode == _PG_LOCK_NOT_AVAILABLE:
            return Reason.LOCK_TIMEOUT
        if pgcode == _PG_QUERY_CANCELED and "statement timeout" in str(orig):
            return Reason.STATEMENT_TIMEOUT
        if pgcode.startswith(_PG_CONNECTION_CLASS) or pgcode in _PG_SHUTDOWN_CODES:
            return Reason.DATABASE_UNREACHABLE
        return None
    errno = _mysql_errno(orig)
    if errno in _MYSQL_CODES:
        return _MYSQL_CODES[errno]
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
    if isinstance(exc, RunnerFailure):
        return exc.message
    if isinstance(exc, SystemExit):
        return (
            f"SystemExit({exc.code!r}): a migration script or env.py called sys.exit() "
            "(or a command-line tool in standalone mode); the migration did not finish"
        )
    return f"{type(exc).__name__}: {exc}".strip()
