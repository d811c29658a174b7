"""Applying migrations: to head, no-op, partial failure, downgrades — on all three backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.databases import Database
from tests.runner.harness import ALL_REVISIONS, HEAD, copy_project, revision_source, run_runner


def test_fresh_database_to_head(database: Database, tmp_path: Path) -> None:
    run = run_runner(database.url, tmp_path=tmp_path)
    assert run.exit_code == 0, run.stderr
    assert run.result["outcome"] == "Succeeded"
    assert run.result["reason"] == "Applied"
    assert run.result["fromRevision"] is None
    assert run.result["toRevision"] == HEAD
    assert len(run.result["appliedRevisions"]) == ALL_REVISIONS
    assert run.termination == run.stdout.strip().splitlines()[-1]
    assert database.versions() == {HEAD}
    assert {"customers", "products", "orders", "order_items"} <= database.tables()


def test_no_op_at_head(database: Database, tmp_path: Path) -> None:
    assert run_runner(database.url, tmp_path=tmp_path).exit_code == 0
    again = run_runner(database.url, tmp_path=tmp_path)
    assert again.exit_code == 0
    assert again.result["reason"] == "UpToDate"
    assert again.result["appliedRevisions"] == []
    assert again.result["fromRevision"] == again.result["toRevision"] == HEAD
    assert database.versions() == {HEAD}


BROKEN = {
    "0010_good.py": revision_source(
        "0010_good",
        HEAD,
        "    op.create_table('audit_log', sa.Column('id', sa.Integer, primary_key=True))",
    ),
    "0011_broken.py": revision_source(
        "0011_broken", "0010_good", "    op.execute('SELECT * FROM no_such_table')"
    ),
    "0012_after.py": revision_source(
        "0012_after", "0011_broken", "    op.create_table('never', sa.Column('id', sa.Integer))"
    ),
}


@pytest.mark.postgresql
def test_failure_at_revision_n_leaves_postgresql_at_n_minus_1(
    pg_database: Database, tmp_path: Path
) -> None:
    project = copy_project(tmp_path, extra=BROKEN)
    run = run_runner(pg_database.url, tmp_path=tmp_path, project=project)
    assert run.exit_code == 10
    assert run.result["outcome"] == "Failed"
    assert run.result["reason"] == "MigrationFailed"
    assert run.result["failedRevision"] == "0011_broken"
    assert run.result["toRevision"] == "0010_good"
    assert run.result["appliedRevisions"][-1] == "0010_good"
    assert len(run.result["appliedRevisions"]) == ALL_REVISIONS + 1
    assert "no_such_table" in run.result["message"]
    assert pg_database.versions() == {"0010_good"}
    assert "audit_log" in pg_database.tables()
    assert "never" not in pg_database.tables()


def test_failure_is_reported_on_every_backend(database: Database, tmp_path: Path) -> None:
    project = copy_project(tmp_path, extra=BROKEN)
    run = run_runner(database.url, tmp_path=tmp_path, project=project)
    assert (run.exit_code, run.result["reason"]) == (10, "MigrationFailed")
    assert run.result["failedRevision"] == "0011_broken"
    assert database.versions() == {"0010_good"}


def test_downgrade_is_refused_without_permission(database: Database, tmp_path: Path) -> None:
    assert run_runner(database.url, tmp_path=tmp_path).exit_code == 0
    run = run_runner(database.url, "--revision", "0004_seed_data", tmp_path=tmp_path)
    assert run.exit_code == 14
    assert run.result["reason"] == "DowngradeRefused"
    assert "allowDowngrade" in run.result["message"]
    assert database.versions() == {HEAD}


def test_downgrade_runs_when_allowed(database: Database, tmp_path: Path) -> None:
    assert run_runner(database.url, tmp_path=tmp_path).exit_code == 0
    run = run_runner(
        database.url, "--revision", "0004_seed_data", "--allow-downgrade", tmp_path=tmp_path
    )
    assert run.exit_code == 0, run.stderr
    assert (run.result["reason"], run.result["direction"]) == ("Applied", "downgrade")
    assert run.result["toRevision"] == "0004_seed_data"
    assert run.result["appliedRevisions"][0] == HEAD
    assert database.versions() == {"0004_seed_data"}
    assert "categories" not in database.tables()


def test_settings_come_from_the_environment(database: Database, tmp_path: Path) -> None:
    run = run_runner(
        database.url,
        tmp_path=tmp_path,
        env={"ALEMBIC_OPERATOR_REVISION": "0003_orders", "ALEMBIC_OPERATOR_X_ARGS": '{"k": "v"}'},
    )
    assert run.exit_code == 0, run.stderr
    assert database.versions() == {"0003_orders"}


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        pytest.param({"ALEMBIC_OPERATOR_CONFIG": "missing.ini"}, "not found", id="no-ini"),
        pytest.param({"ALEMBIC_OPERATOR_SECTION": "nope"}, "section [nope]", id="no-section"),
        pytest.param({"ALEMBIC_OPERATOR_MODE": "yolo"}, "apply or plan", id="bad-mode"),
        pytest.param({"ALEMBIC_OPERATOR_LOCK_TIMEOUT_SECONDS": "-1"}, "positive", id="bad-wait"),
        pytest.param({"ALEMBIC_OPERATOR_PG_LOCK_TIMEOUT": "5 s"}, "duration", id="bad-duration"),
        pytest.param({"ALEMBIC_OPERATOR_REVISION": "../etc"}, "not a revision", id="bad-rev"),
        pytest.param(
            {"ALEMBIC_OPERATOR_WORKDIR": "/nonexistent"}, "working directory", id="bad-workdir"
        ),
        pytest.param({"DATABASE_URL": ""}, "DATABASE_URL is not set", id="no-url"),
    ],
)
def test_invalid_configuration_is_a_permanent_failure(
    env: dict[str, str], fragment: str, tmp_path: Path
) -> None:
    run = run_runner(f"sqlite:///{tmp_path}/x.db", tmp_path=tmp_path, env=env)
    assert run.exit_code == 15
    assert run.result["reason"] == "InvalidConfiguration"
    assert fragment in run.result["message"]
