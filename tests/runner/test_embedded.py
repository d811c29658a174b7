"""The embedded runner: one zipapp of the package's own files, runnable on old Alembic too."""

from __future__ import annotations

import ast
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from alembic_operator.bundling import (
    EMBEDDED_MODULES,
    ENTRY_POINT,
    PACKAGE_DIR,
    module_path,
    write_runner,
)
from tests.conftest import MIGRATIONS, REPO
from tests.databases import Database
from tests.runner.harness import ALL_REVISIONS, HEAD, copy_project, revision_source, run_runner

# The oldest versions the runner supports (DESIGN section 4).
OLD_STACK = ("sqlalchemy==1.4.54", "alembic==1.7.7", "psycopg2-binary==2.9.10", "pymysql==1.1.1")
OLD_VENV = REPO / ".venv-compat-sa14"


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[zipfile.ZipFile]:
    with zipfile.ZipFile(write_runner(tmp_path / "runner.py")) as opened:
        yield opened


def _modules(archive: zipfile.ZipFile) -> dict[str, ast.Module]:
    """The archive's Python modules by dotted name (``__main__`` included), parsed."""
    found = {}
    for name in archive.namelist():
        if name.endswith(".py"):
            dotted = name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            found[dotted] = ast.parse(archive.read(name), name)
    return found


def _imports(tree: ast.Module, names: set[str]) -> set[str]:
    """Absolute imports of ``tree``: a module's full name if it is one of ``names``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            subs = {f"{node.module}.{a.name}" for a in node.names} & names
            found.update(subs or {node.module})
    return found


def test_archive_imports_only_the_standard_library_alembic_sqlalchemy_and_itself(
    archive: zipfile.ZipFile,
) -> None:
    modules = _modules(archive)
    imported = set().union(*(_imports(tree, set(modules)) for tree in modules.values()))
    ours = {m for m in imported if m.split(".")[0] == "alembic_operator"}
    third_party = {m.split(".")[0] for m in imported - ours} - set(sys.stdlib_module_names)
    assert third_party == {"alembic", "sqlalchemy"}
    assert ours <= set(modules), "imported by the runner but not in the archive"
    assert {"alembic_operator.runner.main", ENTRY_POINT.split(":")[0]} <= set(modules)


def test_archive_holds_the_package_files_unchanged(archive: zipfile.ZipFile) -> None:
    expected = {module_path(m).as_posix() for m in EMBEDDED_MODULES} | {"__main__.py"}
    assert {n for n in archive.namelist() if not n.endswith("/")} == expected
    for module in EMBEDDED_MODULES:
        path = module_path(module)
        assert archive.read(path.as_posix()) == (PACKAGE_DIR.parent / path).read_bytes()
    module, function = ENTRY_POINT.split(":")
    assert f"{module}.{function}()" in archive.read("__main__.py").decode()


def test_writing_leaves_only_the_runner(tmp_path: Path) -> None:
    # The staging directory is made next to the target (the root filesystem may be read-only).
    runner = write_runner(tmp_path)
    assert list(tmp_path.iterdir()) == [runner]
    assert stat.S_IMODE(runner.stat().st_mode) == 0o755
    assert runner.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_bundle_runs_like_the_package(database: Database, tmp_path: Path) -> None:
    run = run_runner(database.url, tmp_path=tmp_path, embedded_python=sys.executable)
    assert run.exit_code == 0, run.stderr
    assert len(run.result["appliedRevisions"]) == ALL_REVISIONS
    assert database.versions() == {HEAD}


_GC_STATE = "import gc; print(gc.isenabled(), gc.get_freeze_count() > 0)"


@pytest.mark.parametrize(
    ("prelude", "expected"),
    [
        pytest.param(
            "from alembic_operator.cli import _import_runner; _import_runner()",
            "True True",
            id="cli-migrate-freezes-its-imports",
        ),
        pytest.param(
            "import runpy, sys; sys.argv = [PATH, '--help']\n"
            "try: runpy.run_path(PATH, run_name='__main__')\nexcept SystemExit: pass",
            "True True",
            id="archive-as-a-script-freezes-its-imports",
        ),
        pytest.param(
            "import sys; sys.path.insert(0, PATH); import alembic_operator.runner.main as m\n"
            "assert m.__file__.startswith(PATH), m.__file__",
            "True False",
            id="archive-imported-as-a-package-leaves-gc-alone",
        ),
    ],
)
def test_runner_imports_run_without_gc_then_freeze(
    prelude: str, expected: str, tmp_path: Path
) -> None:
    # A one-shot process: its import-time heap is frozen, so no collection (nor the one at
    # exit) walks it again; the collector is on again for the migrations' own garbage.
    path = write_runner(tmp_path / "runner.py")
    code = f"PATH = {str(path)!r}\n{prelude}\n{_GC_STATE}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == expected


@pytest.fixture(scope="session")
def old_python() -> str:
    """A virtualenv with SQLAlchemy 1.4 and Alembic 1.7 (built once, then reused)."""
    python = OLD_VENV / "bin" / "python"
    marker = OLD_VENV / ("installed-" + "-".join(OLD_STACK).replace("=", "_"))
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(OLD_VENV)], check=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *OLD_STACK],
            capture_output=True,
            text=True,
            check=False,
        )
        if install.returncode:
            pytest.fail(f"cannot build the old-version virtualenv:\n{install.stderr}")
        marker.touch()
    return str(python)


@pytest.mark.slow
def test_old_alembic_and_sqlalchemy(old_python: str, database: Database, tmp_path: Path) -> None:
    versions = subprocess.run(
        [
            old_python,
            "-c",
            "import alembic, sqlalchemy; print(alembic.__version__, sqlalchemy.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert versions == ["1.7.7", "1.4.54"]
    run = run_runner(database.url, tmp_path=tmp_path, embedded_python=old_python)
    assert run.exit_code == 0, run.stderr
    assert database.versions() == {HEAD}
    again = run_runner(database.url, tmp_path=tmp_path, embedded_python=old_python)
    assert again.result["reason"] == "UpToDate"
    down = run_runner(
        database.url, "--revision", "0004_seed_data", tmp_path=tmp_path, embedded_python=old_python
    )
    assert (down.exit_code, down.result["reason"]) == (14, "DowngradeRefused")
    plan = run_runner(
        database.url,
        "--plan",
        "--revision",
        "0004_seed_data",
        "--allow-downgrade",
        tmp_path=tmp_path,
        embedded_python=old_python,
    )
    assert plan.result["plan"]["destructive"] is True
    assert database.versions() == {HEAD}


@pytest.mark.slow
@pytest.mark.postgresql
def test_old_stack_reports_failures(old_python: str, pg_database: Database, tmp_path: Path) -> None:
    broken = revision_source("0010_broken", HEAD, "    op.execute('SELECT * FROM nope')")
    project = copy_project(tmp_path, extra={"0010_broken.py": broken})
    run = run_runner(
        pg_database.url, tmp_path=tmp_path, project=project, embedded_python=old_python
    )
    assert (run.exit_code, run.result["reason"]) == (10, "MigrationFailed")
    assert run.result["failedRevision"] == "0010_broken"
    assert pg_database.versions() == {HEAD}


@pytest.mark.slow
@pytest.mark.postgresql
def test_old_stack_checks_an_approved_plan(
    old_python: str, pg_database: Database, tmp_path: Path
) -> None:
    plan = run_runner(pg_database.url, "--plan", tmp_path=tmp_path, embedded_python=old_python)
    assert plan.exit_code == 0, plan.stderr
    approved = (
        "--args-only",
        f"--workdir={MIGRATIONS}",
        "--expect-revisions=base",
        f"--expect-plan-revisions={','.join(plan.result['plan']['revisions'])}",
        f"--expect-sql-sha256={plan.result['plan']['sqlSha256']}",
        f"--termination-message-path={tmp_path / 'termination'}",
    )
    drop = revision_source("0010_drop", HEAD, "    op.drop_table('categories')")
    project = copy_project(tmp_path, extra={"0010_drop.py": drop})
    changed = (*approved[:1], f"--workdir={project}", *approved[2:])
    refused = run_runner(pg_database.url, *changed, tmp_path=tmp_path, embedded_python=old_python)
    assert (refused.exit_code, refused.result["reason"]) == (17, "PlanOutdated"), refused.stderr
    assert pg_database.tables() == set()
    applied = run_runner(pg_database.url, *approved, tmp_path=tmp_path, embedded_python=old_python)
    assert applied.exit_code == 0, applied.stderr
    assert pg_database.versions() == {HEAD}
