"""The lock is held for as long as any statement of the migration can still run on the server.

A second runner must never run a revision while the first one's statement still runs: not when
the server ends the first runner's idle lock session (``idle_session_timeout``), not when the
first runner is killed mid-statement (its statement goes on server-side), and a lost lock stops
the migration before its next revision.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg2
import pymysql
import pytest

from tests.databases import MARIADB_ADMIN, PG_ADMIN, Database
from tests.runner.harness import HEAD, copy_project, revision_source, start_runner, wait_until

MARK = "ao_marker_sleep"


def _sleep_sql(database: Database, seconds: float) -> str:
    if database.backend == "postgresql":
        return f"SELECT pg_sleep({seconds}), '{MARK}'"
    return f"SELECT SLEEP({seconds}), '{MARK}'"


def _sleeping_project(tmp_path: Path, database: Database, seconds: float) -> Path:
    """The example project plus 0010 (a long statement) and 0011 (a table)."""
    body = f"    op.execute({_sleep_sql(database, seconds)!r})"
    after = "    op.create_table('after_sleep', sa.Column('id', sa.Integer, primary_key=True))"
    return copy_project(
        tmp_path,
        extra={
            "0010_sleep.py": revision_source("0010_sleep", HEAD, body),
            "0011_after.py": revision_source("0011_after", "0010_sleep", after),
        },
    )


class Watcher:
    """Counts, in a loop, the server sessions running the marked statement; keeps the maximum."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.seen_max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def count(self) -> int:
        if self.database.backend == "postgresql":
            sql = (
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                f"AND query LIKE '%{MARK}%' AND query NOT LIKE '%pg_stat_activity%'"
            )
        else:
            sql = (
                "SELECT count(*) FROM information_schema.PROCESSLIST "
                f"WHERE INFO LIKE '%{MARK}%' AND INFO NOT LIKE '%PROCESSLIST%'"
            )
        return int(self.database.query(sql)[0][0])  # type: ignore[call-overload]

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.seen_max = max(self.seen_max, self.count())
            self._stop.wait(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.seen_max


@pytest.mark.postgresql
def test_idle_session_timeout_does_not_free_the_lock(pg_database: Database, tmp_path: Path) -> None:
    # Every new session of this database is ended by the server after 1 s idle.
    admin = psycopg2.connect(**PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"ALTER DATABASE \"{pg_database.name}\" SET idle_session_timeout = '1s'")
    admin.close()
    project = _sleeping_project(tmp_path, pg_database, 4)
    watcher = Watcher(pg_database)
    first = start_runner(pg_database.url, tmp_path=tmp_path, project=project)
    wait_until(lambda: watcher.count() == 1, timeout=60, what="the first runner's statement")
    second = start_runner(pg_database.url, tmp_path=tmp_path, project=project)
    runs = [first.finish(), second.finish()]
    assert watcher.stop() == 1, "two runners ran the same revision at once"
    assert [r.result["reason"] for r in runs] == ["Applied", "UpToDate"], [r.stderr for r in runs]
    assert pg_database.versions() == {"0011_after"}


def test_a_killed_runners_statement_keeps_the_lock(
    server_database: Database, tmp_path: Path
) -> None:
    project = _sleeping_project(tmp_path, server_database, 3)
    watcher = Watcher(server_database)
    first = start_runner(server_database.url, tmp_path=tmp_path, project=project)
    wait_until(lambda: watcher.count() == 1, timeout=60, what="the first runner's statement")
    first.proc.kill()  # SIGKILL: no cleanup; the statement goes on on the server
    first.proc.wait()
    second = start_runner(server_database.url, tmp_path=tmp_path, project=project)
    run = second.finish()
    assert watcher.stop() == 1, "the second runner ran the revision next to the orphaned one"
    assert run.exit_code == 0, run.stderr
    assert "0010_sleep" in run.result["appliedRevisions"] or run.result["fromRevision"]
    assert server_database.versions() == {"0011_after"}


def _lock_session_pids(database: Database) -> list[int]:
    if database.backend == "postgresql":
        rows = database.query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'alembic-operator-lock'"
        )
    else:
        rows = database.query(
            f"SELECT IS_USED_LOCK('alembic-operator:{database.name}') AS id HAVING id IS NOT NULL"
        )
    return [int(r[0]) for r in rows]  # type: ignore[call-overload]


def _end_session(database: Database, pid: int) -> None:
    if database.backend == "postgresql":
        conn = psycopg2.connect(**PG_ADMIN)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    else:
        conn = pymysql.connect(**MARIADB_ADMIN, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"KILL {pid}")
    conn.close()


def test_a_lost_lock_stops_before_the_next_revision(
    server_database: Database, tmp_path: Path
) -> None:
    project = _sleeping_project(tmp_path, server_database, 2)
    watcher = Watcher(server_database)
    first = start_runner(server_database.url, tmp_path=tmp_path, project=project)
    wait_until(lambda: watcher.count() == 1, timeout=60, what="the first runner's statement")
    [pid] = _lock_session_pids(server_database)
    _end_session(server_database, pid)  # a DBA, the network, a server timeout
    run = first.finish()
    watcher.stop()
    assert (run.exit_code, run.result["reason"]) == (22, "LockLost"), run.stderr
    assert run.result["failedRevision"] == "0011_after"
    assert (
        "stopped before revision 0011_after; database left at 0010_sleep" in (run.result["message"])
    )
    assert server_database.versions() == {"0010_sleep"}
    assert "after_sleep" not in server_database.tables()
