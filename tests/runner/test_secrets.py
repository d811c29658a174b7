"""The password travels only in DATABASE_URL and never appears in anything the runner emits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.databases import Database, fresh_database, user_with_password
from tests.runner.harness import HEAD, Run, copy_project, revision_source, run_runner

PASSWORD = "S3cr@t%pa:ss/w0rd@end"
FORMS = (PASSWORD, quote(PASSWORD, safe=""), PASSWORD.replace("%", "%%"), "S3cr@t")


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def secret_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, str]]:
    """A fresh database and a new user whose password has ``@ % : /`` in it."""
    with fresh_database(request.param, tmp_path) as db, user_with_password(db, PASSWORD) as url:
        yield db, url


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
    assert (run.exit_code, run.result["reason"]) == (18, "AuthenticationFailed")
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
