"""The per-database migration lock: held for as long as any statement of the migration can run.

Two locks, both session-level, so the server ends them with their session and never earlier:

* the *run lock*, on a dedicated session taken before the current revision is read and held
  for the whole run (it is what a second runner waits for);
* the *statement lock*, taken on the migration's own connection (the one ``env.py`` opens)
  before its first statement. A runner killed mid-statement leaves its statement running on
  the server; the run lock goes with the killed client's idle session at once, but the
  statement lock stays with the orphaned backend until the server ends it. The next runner
  takes the run lock, then waits for the statement lock.

Before each revision the run lock's session is checked: a lost session (ended by the server's
``idle_session_timeout``, a DBA, the network) stops the migration before its next statement
(``LockLost``). The run lock's session also opts out of the server's idle timeouts.

PostgreSQL: ``pg_try_advisory_lock``, polled (see :meth:`DatabaseLock._acquire_postgresql`).
MySQL/MariaDB: ``GET_LOCK`` (server-scoped, so the name includes the database).
SQLite: no advisory locks; SQLite's own write lock serialises writers.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alembic_operator.model.reasons import Reason
from alembic_operator.runner.database import RunnerFailure, classify_error, connect, describe, log

_LOCK_POLL_SECONDS = 0.1
_ADVISORY_LOCK_BACKENDS = ("postgresql", "mysql", "mariadb")
LOCK_SESSION_APPLICATION_NAME = "alembic-operator-lock"
_PG_IDLE_TIMEOUTS_FROM = 140000  # idle_session_timeout exists from PostgreSQL 14
_MYSQL_MAX_WAIT_TIMEOUT = 31536000
_ABANDON_WAIT_SECONDS = 2.0


def _pg_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class DatabaseLock:
    """The run lock (a dedicated session) and the statement lock (the migration's connection)."""

    def __init__(self, engine: Engine, *, name: str, timeout_seconds: float) -> None:
        self._engine = engine
        self._name = name
        self._timeout = timeout_seconds
        self._connection: Connection | None = None
        self._release_sql: tuple[str, dict[str, Any]] | None = None
        self._early: EarlySession | None = None
        database = engine.url.database or ""
        self._mysql_name = f"{name}:{database}"[:64]

    @property
    def backend(self) -> str:
        return self._engine.dialect.name

    def open_session_early(self) -> None:
        """Start opening the lock's session in the background; :meth:`acquire` waits for it.

        Only the connection (an idle session: no lock, no query, no snapshot) is made early, so
        its round trips overlap the loading of the scripts; a connection error is still
        reported by :meth:`acquire`, and a run that ends before it never sees one.
        """
        if self._early is None and self.backend in _ADVISORY_LOCK_BACKENDS:
            self._early = EarlySession(self._engine)

    def acquire(self) -> None:
        if self.backend not in _ADVISORY_LOCK_BACKENDS:
            log.info("%s has no advisory locks: relying on its own write lock", self.backend)
            return
        early, self._early = self._early, None
        conn = early.wait() if early is not None else connect(self._engine)
        self._connection = conn.execution_options(isolation_level="AUTOCOMMIT")
        log.info("waiting up to %.0fs for the migration lock %r", self._timeout, self._name)
        if self.backend == "postgresql":
            self._acquire_postgresql(self._connection)
        else:
            self._acquire_mysql(self._connection)
        self._keep_session(self._connection)
        log.info("migration lock %r acquired", self._name)

    def _acquire_postgresql(self, conn: Connection) -> None:
        # Poll instead of blocking in pg_advisory_lock: a blocked statement holds a snapshot,
        # and the lock holder's CREATE INDEX CONCURRENTLY waits for every snapshot to end — a
        # deadlock PostgreSQL does not detect. Between polls this session holds nothing.
        key = _pg_key(self._name)
        if not self._poll_postgresql(conn, key):
            raise self._timed_out(self._name)
        self._release_sql = ("SELECT pg_advisory_unlock(:key)", {"key": key})

    def _poll_postgresql(self, conn: Connection, key: int) -> bool:
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            except sa.exc.DBAPIError as exc:
                raise self._classified(exc) from None
            if got.scalar():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(_LOCK_POLL_SECONDS, remaining))

    def _acquire_mysql(self, conn: Connection) -> None:
        if not self._get_lock(conn, self._mysql_name):
            raise self._timed_out(self._mysql_name)
        self._release_sql = ("SELECT RELEASE_LOCK(:name)", {"name": self._mysql_name})

    def _get_lock(self, conn: Connection, name: str) -> bool:
        try:
            got = conn.execute(
                sa.text("SELECT GET_LOCK(:name, :timeout)"),
                {"name": name, "timeout": self._timeout},
            ).scalar()
        except sa.exc.DBAPIError as exc:
            raise self._classified(exc) from None
        return bool(got == 1)

    def _keep_session(self, conn: Connection) -> None:
        """Name the session and opt it out of the server's idle timeouts (best effort)."""
        if self.backend == "postgresql":
            statements = [f"SET application_name = '{LOCK_SESSION_APPLICATION_NAME}'"]
            version = conn.execute(sa.text("SHOW server_version_num")).scalar()
            if int(str(version)) >= _PG_IDLE_TIMEOUTS_FROM:
                statements.append("SET idle_session_timeout = 0")
        else:
            statements = [f"SET SESSION wait_timeout = {_MYSQL_MAX_WAIT_TIMEOUT}"]
        for statement in statements:
            try:
                conn.execute(sa.text(statement))
            except sa.exc.DBAPIError as exc:
                log.warning("could not set up the lock session (%s): %s", statement, describe(exc))

    def guard_statements(self, conn: Connection) -> None:
        """Take the statement lock on the migration's connection ``conn`` (module docstring).

        It is contended only while a killed runner's statement still runs on the server (the
        run lock keeps live runners apart), so waiting here means waiting for that statement.
        """
        if self._connection is None:
            return
        if self.backend == "postgresql":
            got = self._poll_postgresql(conn, _pg_key(self._name + "\x00statements"))
        else:
            got = self._get_lock(conn, f"s:{self._mysql_name}"[:64])
        if not got:
            raise RunnerFailure(
                Reason.LOCK_TIMEOUT,
                f"a previous migration's statement still runs on the server (the statement lock "
                f"of {self._name!r} is held); gave up after {self._timeout:g}s",
            )
        log.info("statement lock of %r taken on the migration's connection", self._name)

    def check(self) -> None:
        """Raise ``LockLost`` unless the run lock's session is still there (and, on MySQL, ours)."""
        conn = self._connection
        if conn is None:
            return
        try:
            if self.backend == "postgresql":
                alive = conn.execute(sa.text("SELECT 1")).scalar() == 1
            else:
                alive = (
                    conn.execute(
                        sa.text("SELECT IS_USED_LOCK(:name) = CONNECTION_ID()"),
                        {"name": self._mysql_name},
                    ).scalar()
                    == 1
                )
        except sa.exc.SQLAlchemyError as exc:
            raise RunnerFailure(
                Reason.LOCK_LOST,
                f"the migration lock {self._name!r} was lost (its session ended: "
                f"{describe(exc)}); stopped before the next revision",
            ) from None
        if not alive:
            raise RunnerFailure(
                Reason.LOCK_LOST,
                f"the migration lock {self._name!r} was lost; stopped before the next revision",
            )

    def _timed_out(self, name: str) -> RunnerFailure:
        return RunnerFailure(
            Reason.LOCK_TIMEOUT,
            f"another migration holds the lock {name!r}; gave up after {self._timeout:g}s",
        )

    def _classified(self, exc: sa.exc.DBAPIError) -> RunnerFailure:
        reason = classify_error(exc, connecting=False)
        if reason is Reason.LOCK_TIMEOUT:
            return self._timed_out(self._name)
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
        except sa.exc.SQLAlchemyError:  # a lost session: the lock went with it
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

    def abandon(self, wait_seconds: float = _ABANDON_WAIT_SECONDS) -> None:
        """Close the connection when it arrives, waiting a little for the thread to end.

        A thread still inside a driver when the interpreter shuts down can crash the process
        after the result was written (seen with PyMySQL): a connection that is nearly made
        gets a moment to finish; one to an unreachable server is not waited for.
        """
        with self._mutex:
            self._abandoned = True
            conn, self._connection = self._connection, None
        if conn is not None:
            conn.close()
        self._thread.join(wait_seconds)
