"""The password travels only in DATABASE_URL and never appears in anything the runner emits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pymysql
import pytest

from tests.databases import MARIADB_ADMIN, PG_ADMIN, Database, fresh_mariadb, fresh_postgresql
from tests.runner.harness import HEAD, Run, copy_project, revision_source, run_runner

PASSWORD = "S3cr@t%pa:ss/w0rd@end"
FORMS = (PASSWORD, quote(PASSWORD, safe=""), PASSWORD.replace("%", "%%"), "S3cr@t")


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def secret_url(request: pytest.FixtureRequest) -> Iterator[tuple[Database, str]]:
    """A fresh database owned by a new user whose password has ``@ % : /`` in it."""
    user = f"ao_{uuid.uuid4().hex[:8]}"
    if request.param == "postgresql":
        with fresh_postgresql() as db:
            admin = psycopg2.connect(**{**PG_ADMIN, "dbname": db.name})
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f"CREATE ROLE {user} LOGIN PASSWORD %s", (PASSWORD,))
                cur.execute(f"GRANT ALL ON SCHEMA public TO {user}")
            yield db, f"postgresql+psycopg2://{user}:{quote(PASSWORD, safe='')}@127.0.0.1/{db.name}"
            with admin.cursor() as cur:
                cur.execute(f"DROP OWNED BY {user}; DROP ROLE {user}")
            admin.close()
    else:
        with fresh_mariadb() as db:
            admin = pymysql.connect(**MARIADB_ADMIN, autocommit=True)
            with admin.cursor() as cur:
                cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (PASSWORD,))
                cur.execute(f"GRANT ALL ON `{db.name}`.* TO '{user}'@'%'")
            yield db, f"mysql+pymysql://{user}:{quote(PASSWORD, safe='')}@127.0.0.1/{db.name}"
            with admin.cursor() as cur:
                cur.execute(f"DROP USER '{user}'@'%'")
            admin.close()


def assert_no_secret(run: Run) -> None:
    for form in FORMS:
        assert form not in run.everything(), f"{form!r} leaked"


def test_special_character_password_works(secret_url: tuple[Database, str], tmp_path: Path) -> None:
    database, url = secret_url
    run = run_runner(url, tmp_path=tmp_path)
    assert run.exit_code == 0, run.stderr
    assert database.versions() == {HEAD}
    assert_no_secret(run)


@pytest.mark.mariadb
def test_wrong_password_is_rejected_and_not_echoed(tmp_path: Path) -> None:
    # MariaDB checks passwords (the machine's PostgreSQL trusts local connections).
    url = f"mysql+pymysql://root:{quote(PASSWORD, safe='')}@127.0.0.1/mysql"
    run = run_runner(url, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (20, "DatabaseUnreachable")
    assert "Access denied" in run.result["message"]
    assert_no_secret(run)


def test_secret_in_a_failing_revision_is_redacted(
    secret_url: tuple[Database, str], tmp_path: Path
) -> None:
    """A migration that puts the URL into an exception and a log line: both come out masked."""
    _, url = secret_url
    leaky = revision_source(
        "0010_leaky",
        HEAD,
        "    import logging\n"
        "    logging.getLogger('app').warning('connecting with %s', os.environ['DATABASE_URL'])\n"
        "    print('password=' + sa.engine.make_url(os.environ['DATABASE_URL']).password)\n"
        "    raise RuntimeError('cannot use ' + os.environ['DATABASE_URL'])",
    )
    project = copy_project(tmp_path, extra={"0010_leaky.py": leaky})
    run = run_runner(url, tmp_path=tmp_path, project=project)
    assert (run.exit_code, run.result["reason"]) == (10, "MigrationFailed")
    assert "cannot use" in run.result["message"]
    assert "***" in run.result["message"]
    assert "connecting with" in run.stderr
    assert_no_secret(run)


@pytest.mark.parametrize("lock", ["advisory", "none"])
def test_unreachable_host_with_a_password(lock: str, tmp_path: Path) -> None:
    url = f"postgresql+psycopg2://app:{quote(PASSWORD, safe='')}@127.0.0.1:1/shop"
    run = run_runner(url, "--lock", lock, "--connect-timeout", "2", tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (20, "DatabaseUnreachable")
    assert_no_secret(run)
