"""Plan mode renders the offline SQL for the range and leaves the database untouched."""

from __future__ import annotations

from pathlib import Path

from tests.databases import Database
from tests.runner.harness import ALL_REVISIONS, HEAD, copy_project, revision_source, run_runner


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


def test_sql_behind_a_line_prefix_for_pod_logs(database: Database, tmp_path: Path) -> None:
    run = run_runner(database.url, "--plan", "--sql-file=-prefixed", tmp_path=tmp_path)
    assert run.exit_code == 0, run.stderr
    sql_lines = [line[5:] for line in run.stdout.splitlines() if line.startswith("SQL| ")]
    assert any("CREATE TABLE customers" in line for line in sql_lines)
    assert run.result["plan"]["sqlBytes"] == len(("\n".join(sql_lines) + "\n").encode())


def test_an_approved_plan_refuses_a_database_that_moved(database: Database, tmp_path: Path) -> None:
    assert run_runner(database.url, "--revision", "0003_orders", tmp_path=tmp_path).exit_code == 0
    moved = run_runner(database.url, "--expect-revisions", "base", tmp_path=tmp_path)
    assert (moved.exit_code, moved.result["reason"]) == (17, "PlanOutdated")
    assert "outdated" in moved.result["message"]
    assert database.versions() == {"0003_orders"}
    same = run_runner(database.url, "--expect-revisions", "0003_orders", tmp_path=tmp_path)
    assert same.exit_code == 0, same.stderr
    assert database.versions() == {HEAD}


def approved_plan(url: str, tmp_path: Path) -> tuple[str, ...]:
    """Flags pinning an apply run to the plan of the example project from here."""
    plan = run_runner(url, "--plan", "--sql-file", str(tmp_path / "plan.sql"), tmp_path=tmp_path)
    assert plan.exit_code == 0, plan.stderr
    start = plan.result["fromRevision"] or "base"
    return (
        f"--expect-revisions={start}",
        f"--expect-plan-revisions={','.join(plan.result['plan']['revisions'])}",
        f"--expect-sql-sha256={plan.result['plan']['sqlSha256']}",
    )


DROP = revision_source("0010_drop", HEAD, "    op.drop_table('categories')")


def test_an_unseen_revision_is_refused_before_any_ddl(
    pg_database: Database, tmp_path: Path
) -> None:
    approved = approved_plan(pg_database.url, tmp_path)
    # The same tag, pushed again with one more revision.
    project = copy_project(tmp_path, extra={"0010_drop.py": DROP})
    run = run_runner(pg_database.url, *approved, project=project, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (17, "PlanOutdated"), run.stderr
    assert "not in the approved plan: 0010_drop" in run.result["message"]
    assert run.result["appliedRevisions"] == []
    assert pg_database.tables() == set()  # no DDL at all, not even alembic_version


def test_changed_sql_of_the_same_revisions_is_refused(
    pg_database: Database, tmp_path: Path
) -> None:
    assert run_runner(pg_database.url, "--revision", "0008_categories", tmp_path=tmp_path)
    approved = approved_plan(pg_database.url, tmp_path)
    project = copy_project(tmp_path)
    head = project / "versions" / f"{HEAD}.py"
    head.write_text(head.read_text().replace("200", "300"))
    run = run_runner(pg_database.url, *approved, project=project, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (17, "PlanOutdated"), run.stderr
    assert "its SQL has sha256" in run.result["message"]
    assert pg_database.versions() == {"0008_categories"}


def test_the_approved_plan_applies(pg_database: Database, tmp_path: Path) -> None:
    approved = approved_plan(pg_database.url, tmp_path)
    run = run_runner(pg_database.url, *approved, tmp_path=tmp_path)
    assert (run.exit_code, run.result["reason"]) == (0, "Applied"), run.stderr
    assert len(run.result["appliedRevisions"]) == ALL_REVISIONS
    assert pg_database.versions() == {HEAD}
