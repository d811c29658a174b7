"""The per-database lock: runners never run DDL concurrently; blocked DDL fails fast."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg2
import pymysql
import pytest

from tests.databases import MARIADB_ADMIN, PG_ADMIN, Database, fresh_mariadb
from tests.runner.harness import ALL_REVISIONS, HEAD, run_runner, start_runner, wait_until

LOCK_NAME = "alembic-operator"


class LockHolder:
    """Another session holding the runner's lock, as a concurrent runner would."""

    def __init__(self, database: Database) -> None:
        self.database = database
        if database.backend == "postgresql":
            self.conn = psycopg2.connect(**{**PG_ADMIN, "dbname": database.name})
            self.conn.autocommit = True
            key = int.from_bytes(
                hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True
            )
            self._execute(f"SELECT pg_advisory_lock({key})")
            self._release = f"SELECT pg_advisory_unlock({key})"
        else:
            self.conn = pymysql.connect(**MARIADB_ADMIN, autocommit=True)
            name = f"{LOCK_NAME}:{database.name}"
            assert self._execute(f"SELECT GET_LOCK('{name}', 0)") == [(1,)]
            self._release = f"SELECT RELEASE_LOCK('{name}')"

    def _execute(self, sql: str) -> list[tuple[object, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def someone_waits(self) -> bool:
        if self.database.backend == "postgresql":
            # The runner polls pg_try_advisory_lock: it waits between tries, holding nothing.
            rows = self._execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE '%pg_try_advisory_lock%' AND pid <> pg_backend_pid()"
            )
        else:
            rows = self._execute(
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User lock'"
            )
        return bool(rows[0][0])

    def release(self) -> None:
        self._execute(self._release)
        self.conn.close()


def test_second_runner_waits_for_the_lock(server_database: Database, tmp_path: Path) -> None:
    holder = LockHolder(server_database)
    started = start_runner(server_database.url, tmp_path=tmp_path)
    try:
        wait_until(holder.someone_waits, what="the runner to wait on the lock")
        assert server_database.versions() == set()  # no DDL while the lock is held
    finally:
        holder.release()
    run = started.finish()
    assert run.exit_code == 0, run.stderr
    assert server_database.versions() == {HEAD}


def test_lock_wait_is_bounded(server_database: Database, tmp_path: Path) -> None:
    holder = LockHolder(server_database)
    try:
        run = run_runner(server_database.url, "--lock-timeout", "0.5", tmp_path=tmp_path)
    finally:
        holder.release()
    assert (run.exit_code, run.result["reason"]) == (21, "LockTimeout")
    assert "another migration holds the lock" in run.result["message"]
    assert server_database.versions() == set()


def test_two_runners_at_once_apply_once(server_database: Database, tmp_path: Path) -> None:
    first = start_runner(server_database.url, tmp_path=tmp_path)
    second = start_runner(server_database.url, tmp_path=tmp_path)
    runs = [first.finish(), second.finish()]
    assert [r.exit_code for r in runs] == [0, 0], [r.stderr for r in runs]
    reasons = sorted(r.result["reason"] for r in runs)
    assert reasons == ["Applied", "UpToDate"]
    applied = next(r for r in runs if r.result["reason"] == "Applied")
    assert len(applied.result["appliedRevisions"]) == ALL_REVISIONS
    assert server_database.versions() == {HEAD}


@pytest.mark.postgresql
def test_reader_holding_a_table_lock_makes_ddl_fail_fast(
    pg_database: Database, tmp_path: Path
) -> None:
    assert run_runner(pg_database.url, "--revision", "0008_categories", tmp_path=tmp_path)
    reader = psycopg2.connect(**{**PG_ADMIN, "dbname": pg_database.name})
    try:
        with reader.cursor() as cur:  # an open transaction holding ACCESS SHARE on products
            cur.execute("SELECT count(*) FROM products")
        run = run_runner(pg_database.url, "--pg-lock-timeout", "200ms", tmp_path=tmp_path)
        assert reader.status == psycopg2.extensions.STATUS_IN_TRANSACTION  # still reading
    finally:
        reader.close()
    assert (run.exit_code, run.result["reason"]) == (21, "LockTimeout")
    assert run.result["failedRevision"] == HEAD
    assert "lock timeout" in run.result["message"]
    assert pg_database.versions() == {"0008_categories"}


@pytest.mark.postgresql
def test_statement_timeout_is_reported_as_such(pg_database: Database, tmp_path: Path) -> None:
    # Even the first query (reading the current revision) hits it: not "unreachable".
    run = run_runner(pg_database.url, "--pg-statement-timeout", "1ms", tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (16, "StatementTimeout")
    assert "statement timeout" in run.result["message"]


@pytest.mark.mariadb
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("--pg-lock-timeout", "1s"), id="session-lock-timeout"),
        pytest.param(("--lock-timeout", "1"), id="lock-timeout-seconds"),
    ],
)
def test_mariadb_metadata_lock_wait_is_bounded(tmp_path: Path, args: tuple[str, ...]) -> None:
    # MariaDB's lock_wait_timeout (metadata locks) defaults to a day: an ALTER behind a
    # reader's open transaction must give up within the migration's lock timeout instead.
    with fresh_mariadb() as db:
        assert run_runner(db.url, "--revision", "0008_categories", tmp_path=tmp_path)
        reader = pymysql.connect(**MARIADB_ADMIN, database=db.name, autocommit=False)
        try:
            with reader.cursor() as cur:  # an open transaction holding a metadata lock
                cur.execute("SELECT count(*) FROM products")
            run = run_runner(db.url, *args, tmp_path=tmp_path, timeout=60)
        finally:
            reader.close()
        assert (run.exit_code, run.result["reason"]) == (21, "LockTimeout"), run.stderr
        assert run.result["failedRevision"] == HEAD
        assert "Lock wait timeout exceeded" in run.result["message"]
        assert db.versions() == {"0008_categories"}
