"""Plan mode renders the offline SQL for the range and leaves the database untouched."""

from __future__ import annotations

from pathlib import Path

from tests.databases import Database
from tests.runner.harness import ALL_REVISIONS, HEAD, run_runner


def test_plan_changes_nothing(database: Database, tmp_path: Path) -> None:
    sql_file = tmp_path / "plan.sql"
    run = run_runner(database.url, "--plan", "--sql-file", str(sql_file), tmp_path=tmp_path)
    assert run.exit_code == 0, run.stderr
    assert (run.result["reason"], run.result["mode"]) == ("Planned", "plan")
    plan = run.result["plan"]
    assert plan["direction"] == "upgrade"
    assert len(plan["revisions"]) == ALL_REVISIONS
    assert plan["destructive"] is False
    sql = sql_file.read_text()
    assert plan["sqlBytes"] == len(sql.encode())
    assert "CREATE TABLE customers" in sql
    assert ("CONCURRENTLY" in sql) == (database.backend == "postgresql")
    assert database.tables() == set()


def test_plan_from_a_partial_database_to_stdout(database: Database, tmp_path: Path) -> None:
    assert (
        run_runner(database.url, "--revision", "0004_seed_data", tmp_path=tmp_path).exit_code == 0
    )
    before = database.tables()
    run = run_runner(database.url, "--plan", tmp_path=tmp_path)
    assert run.exit_code == 0, run.stderr
    assert "0005a_loyalty_points" in run.result["plan"]["revisions"]
    assert "0003_orders" not in run.result["plan"]["revisions"]
    assert "CREATE TABLE categories" in run.stdout
    assert database.tables() == before
    assert database.versions() == {"0004_seed_data"}


def test_downgrade_plan_is_destructive(database: Database, tmp_path: Path) -> None:
    assert run_runner(database.url, tmp_path=tmp_path).exit_code == 0
    run = run_runner(
        database.url,
        "--plan",
        "--revision",
        "0008_categories",
        "--allow-downgrade",
        tmp_path=tmp_path,
    )
    assert run.exit_code == 0, run.stderr
    assert run.result["plan"]["direction"] == "downgrade"
    assert run.result["plan"]["destructive"] is True
    assert run.result["plan"]["revisions"] == [HEAD]
    assert database.versions() == {HEAD}
