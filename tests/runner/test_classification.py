"""Classification before any DDL: SchemaAhead, MultipleHeads, RevisionNotFound, unreachable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.databases import Database
from tests.runner.harness import HEAD, copy_project, revision_source, run_runner


def _stamp(database: Database, revision: str) -> None:
    database.query("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    database.query(f"INSERT INTO alembic_version VALUES ('{revision}')")


def test_database_ahead_of_the_image(database: Database, tmp_path: Path) -> None:
    _stamp(database, "ffffffffffff")
    run = run_runner(database.url, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (11, "SchemaAhead")
    assert "ffffffffffff" in run.result["message"]
    assert run.result["fromRevision"] == "ffffffffffff"
    assert database.tables() == {"alembic_version"}


def test_multiple_heads_with_target_head(database: Database, tmp_path: Path) -> None:
    project = copy_project(
        tmp_path,
        extra={
            "0010_left.py": revision_source("0010_left", HEAD, "    pass"),
            "0010_right.py": revision_source("0010_right", HEAD, "    pass"),
        },
    )
    run = run_runner(database.url, tmp_path=tmp_path, project=project)
    assert (run.exit_code, run.result["reason"]) == (12, "MultipleHeads")
    assert "0010_left" in run.result["message"] and "0010_right" in run.result["message"]
    assert database.versions() == set()
    both = run_runner(database.url, "--revision", "heads", tmp_path=tmp_path, project=project)
    assert both.exit_code == 0, both.stderr
    assert database.versions() == {"0010_left", "0010_right"}


@pytest.mark.parametrize("target", ["0099_nope", "nosuchbranch@head"])
def test_unknown_target(database: Database, tmp_path: Path, target: str) -> None:
    run = run_runner(database.url, "--revision", target, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (13, "RevisionNotFound")
    assert target in run.result["message"]
    assert database.versions() == set()


def test_branch_label_target(database: Database, tmp_path: Path) -> None:
    # The loyalty branch merges back, so its head is the project's head (Alembic's semantics).
    run = run_runner(database.url, "--revision", "loyalty@head", tmp_path=tmp_path)
    assert run.exit_code == 0, run.stderr
    assert run.result["toRevision"] == HEAD


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql+psycopg2://postgres@127.0.0.1:1/shop", id="postgresql"),
        pytest.param("mysql+pymysql://root@127.0.0.1:1/shop", id="mariadb"),
    ],
)
@pytest.mark.parametrize("lock", ["advisory", "none"])
def test_unreachable_database_is_retryable(url: str, lock: str, tmp_path: Path) -> None:
    run = run_runner(url, "--lock", lock, "--connect-timeout", "2", tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (20, "DatabaseUnreachable")
    assert "127.0.0.1" in run.result["message"]


@pytest.mark.postgresql
def test_url_without_a_driver_uses_the_installed_one(pg_database: Database, tmp_path: Path) -> None:
    # SQLAlchemy 2.1 maps postgresql:// to psycopg 3, which this environment lacks.
    url = pg_database.url.replace("postgresql+psycopg2://", "postgresql://")
    run = run_runner(url, tmp_path=tmp_path)
    assert run.exit_code == 0, run.stderr
    assert pg_database.versions() == {HEAD}
