"""Bad input ends with a clear, correctly classified result, and never leaks the password.

URLs that cannot be used, wrong credentials, missing databases, broken scripts, damaged version
tables, awkward output from revisions — on the real databases.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.databases import Database, fresh_database, user_with_password
from tests.runner.harness import HEAD, Run, copy_project, revision_source, run_runner

# A quote of each kind and a backslash: repr(), JSON and bytes-repr all escape it differently.
QUOTY = "O'Brien\\Pa\"ss-7x"


def assert_no_password(run: Run, password: str) -> None:
    text = run.everything()
    forms = {
        password,
        quote(password, safe=""),
        repr(password)[1:-1],
        json.dumps(password)[1:-1],
        repr(password.encode())[2:-1],
        password.replace("\\", "\\\\").replace("'", "\\'"),
    }
    for form in forms:
        assert form not in text, f"{form!r} leaked"
    assert "Pa" + '"' not in text and "Brien" not in text


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment", "secret"),
    [
        pytest.param(
            "postgresql://app:Summer@2024!@127.0.0.1/shop",
            "more than one '@'",
            "2024!",
            id="unescaped-at-in-password",
        ),
        pytest.param(
            "mysql+pymysql://app:a@b@c@127.0.0.1/shop", "more than one '@'", "b@c", id="three-ats"
        ),
        pytest.param("nosuchdialect://app:Sup3rSecret@h/db", "cannot load", "Sup3r", id="dialect"),
        pytest.param(
            "postgresql+nosuchdriver://app:Sup3rSecret@h/db", "cannot load", "Sup3r", id="driver"
        ),
        pytest.param("not a url Sup3rSecret", "not a URL", "Sup3r", id="not-a-url"),
        pytest.param("postgresql://", "neither a host nor a database", "", id="pg-no-host-no-db"),
        pytest.param("mysql+pymysql://", "neither a host nor a database", "", id="my-no-host"),
    ],
)
@pytest.mark.parametrize("lock", ["advisory", "none"])
def test_an_unusable_url_is_invalid_configuration(
    url: str, fragment: str, secret: str, lock: str, tmp_path: Path
) -> None:
    run = run_runner(url, "--lock", lock, "--connect-timeout", "2", tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (15, "InvalidConfiguration"), run.stderr
    assert fragment in run.result["message"]
    assert run.termination == run.stdout.strip().splitlines()[-1]
    if secret:
        assert secret not in run.everything()
        assert "127.0.0.1" not in run.result["message"]  # quoting no part of the URL


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(("--lock-timeout", "nan"), "finite", id="nan"),
        pytest.param(("--lock-timeout", "inf"), "finite", id="inf"),
        pytest.param(("--connect-timeout", "NaN"), "invalid", id="nan-int-flag"),
        pytest.param(("--lock-timeout", "soon"), "invalid", id="not-a-number"),
        pytest.param(("--lock", "sometimes"), "invalid choice", id="bad-choice"),
        pytest.param(("--no-such-flag",), "unrecognized", id="unknown-flag"),
    ],
)
def test_bad_flags_still_write_the_result(
    args: tuple[str, ...], fragment: str, tmp_path: Path
) -> None:
    run = run_runner(f"sqlite:///{tmp_path}/x.db", *args, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (15, "InvalidConfiguration"), run.stderr
    assert fragment in run.result["message"]
    assert not (tmp_path / "x.db").exists()


def test_env_nan_is_refused(tmp_path: Path) -> None:
    run = run_runner(
        f"sqlite:///{tmp_path}/x.db",
        tmp_path=tmp_path,
        env={"ALEMBIC_OPERATOR_LOCK_TIMEOUT_SECONDS": "nan"},
    )
    assert (run.exit_code, run.result["reason"]) == (15, "InvalidConfiguration")
    assert "finite" in run.result["message"]


# --- credentials and databases ----------------------------------------------------------------


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def server_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, tmp_path) as db:
        yield db


def _with(url: str, *, user: str | None = None, database: str | None = None) -> str:
    scheme, rest = url.split("://", 1)
    auth, hostpart = rest.rsplit("@", 1)
    host, _, name = hostpart.partition("/")
    return f"{scheme}://{user or auth}@{host}/{database or name}"


@pytest.mark.parametrize("lock", ["advisory", "none"])
def test_a_missing_database_is_permanent(
    server_database: Database, lock: str, tmp_path: Path
) -> None:
    url = _with(server_database.url, database="ao_no_such_database")
    run = run_runner(url, "--lock", lock, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (19, "DatabaseNotFound"), run.stderr
    assert "ao_no_such_database" in run.result["message"]


@pytest.mark.parametrize("lock", ["advisory", "none"])
def test_a_missing_role_is_an_authentication_failure(
    server_database: Database, lock: str, tmp_path: Path
) -> None:
    url = _with(server_database.url, user="ao_no_such_role")
    run = run_runner(url, "--lock", lock, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (18, "AuthenticationFailed"), run.stderr


@pytest.mark.mariadb
@pytest.mark.parametrize("lock", ["advisory", "none"])
def test_a_wrong_password_is_permanent_and_not_echoed(lock: str, tmp_path: Path) -> None:
    with fresh_database("mariadb", tmp_path) as db, user_with_password(db, QUOTY) as url:
        wrong = url.replace(quote(QUOTY, safe=""), quote(QUOTY + "-wrong", safe=""))
        run = run_runner(wrong, "--lock", lock, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (18, "AuthenticationFailed"), run.stderr
    assert "(using password: YES)" in run.result["message"]  # not a secret
    assert_no_password(run, QUOTY + "-wrong")


@pytest.mark.mariadb
def test_a_password_pymysql_cannot_encode_is_a_configuration_error(tmp_path: Path) -> None:
    password = "пароль-Ω-секрет"  # not latin-1: PyMySQL cannot send it
    with fresh_database("mariadb", tmp_path) as db:
        url = f"mysql+pymysql://root:{quote(password, safe='')}@127.0.0.1/{db.name}"
        run = run_runner(url, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (15, "InvalidConfiguration"), run.stderr
    assert "cannot encode the user name or password" in run.result["message"]
    assert password not in run.everything() and "пароль" not in run.everything()


def test_a_password_in_repr_json_and_bytes_forms_never_leaks(
    server_database: Database, tmp_path: Path
) -> None:
    with user_with_password(server_database, QUOTY) as url:
        leaky = revision_source(
            "0010_leaky",
            HEAD,
            "    import json, logging\n"
            "    pw = sa.engine.make_url(os.environ['DATABASE_URL']).password\n"
            "    print(repr(pw), json.dumps({'pw': pw}), repr(pw.encode()))\n"
            "    logging.getLogger('app').warning('creds %r %s', pw, json.dumps(pw))\n"
            "    raise RuntimeError(repr({'password_was': pw, 'as_bytes': pw.encode()}))",
        )
        project = copy_project(tmp_path, extra={"0010_leaky.py": leaky})
        run = run_runner(url, tmp_path=tmp_path, project=project)
    assert (run.exit_code, run.result["reason"]) == (10, "MigrationFailed"), run.stderr
    assert "revision 0010_leaky failed" in run.result["message"]
    assert "***" in run.result["message"]
    assert_no_password(run, QUOTY)


# --- scripts and version tables ---------------------------------------------------------------


def test_a_duplicate_revision_id_names_both_files(database: Database, tmp_path: Path) -> None:
    project = copy_project(
        tmp_path,
        extra={
            "0010_first.py": revision_source("0010_twice", HEAD, "    pass"),
            "0010_second.py": revision_source("0010_twice", HEAD, "    pass"),
        },
    )
    for args in ((), ("--revision", "heads"), ("--plan",)):
        run = run_runner(database.url, *args, tmp_path=tmp_path, project=project)
        assert (run.exit_code, run.result["reason"]) == (10, "MigrationFailed"), run.stderr
        message = run.result["message"]
        assert "'0010_twice' is defined by versions/0010_first.py and versions/0010_second.py" in (
            message
        )
        assert "heads" not in message
    assert database.versions() == set()


def test_a_missing_down_revision_is_named(database: Database, tmp_path: Path) -> None:
    project = copy_project(
        tmp_path,
        extra={"0010_orphan.py": revision_source("0010_orphan", "0099_missing", "    pass")},
    )
    run = run_runner(database.url, tmp_path=tmp_path, project=project)
    assert (run.exit_code, run.result["reason"]) == (10, "MigrationFailed"), run.stderr
    assert "versions/0010_orphan.py (0010_orphan) names '0099_missing'" in run.result["message"]
    assert "no migration file defines that revision" in run.result["message"]
    assert database.versions() == set()


def _version_rows(database: Database, *rows: str) -> None:
    database.query("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    for row in rows:
        database.query(f"INSERT INTO alembic_version VALUES ('{row}')")


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        pytest.param(
            (HEAD, "0008_categories"), "0008_categories is an ancestor of", id="with-ancestor"
        ),
        pytest.param((HEAD, HEAD), f"holds {HEAD} more than once", id="head-twice"),
        pytest.param(("",), "empty revision id", id="empty-string"),
    ],
)
@pytest.mark.parametrize("mode", [(), ("--plan",)], ids=["apply", "plan"])
def test_a_damaged_version_table_is_refused(
    database: Database, tmp_path: Path, rows: tuple[str, ...], fragment: str, mode: tuple[str, ...]
) -> None:
    _version_rows(database, *rows)
    run = run_runner(database.url, *mode, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (10, "MigrationFailed"), run.stderr
    assert fragment in run.result["message"]
    assert "the database is at ," not in run.result["message"]
    assert database.tables() == {"alembic_version"}


# --- output -----------------------------------------------------------------------------------


def test_output_without_a_newline_does_not_glue_to_the_result(
    database: Database, tmp_path: Path
) -> None:
    body = "    print('progress: 50%', end='')\n    import sys\n    sys.stdout.write('...')"
    project = copy_project(
        tmp_path, extra={"0010_chatty.py": revision_source("0010_chatty", HEAD, body)}
    )
    run = run_runner(database.url, tmp_path=tmp_path, project=project)
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[-2].endswith("progress: 50%...")
    assert json.loads(lines[-1]) == run.result
    assert run.termination == lines[-1]


def test_huge_failing_output_keeps_what_failed_and_where(
    database: Database, tmp_path: Path
) -> None:
    body = (
        "    import sys\n"
        "    for _ in range(3000):\n"
        "        sys.stdout.write('x' * 1023 + '\\n')\n"
        "    raise RuntimeError('E' * 10_000 + ' the last words')"
    )
    project = copy_project(
        tmp_path, extra={"0010_huge.py": revision_source("0010_huge", HEAD, body)}
    )
    run = run_runner(database.url, tmp_path=tmp_path, project=project)
    assert (run.exit_code, run.result["reason"]) == (10, "MigrationFailed"), run.stderr[-2000:]
    assert len(run.stdout) > 3_000_000
    assert len(run.termination.encode()) <= 4000
    assert run.result["failedRevision"] == "0010_huge"
    message = run.result["message"]
    assert message.startswith(f"revision 0010_huge failed; database left at {HEAD}: ")
    assert message.endswith("the last words")
    assert json.loads(run.termination)["failedRevision"] == "0010_huge"
