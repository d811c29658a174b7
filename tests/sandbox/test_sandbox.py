"""The README's first command: the sandbox runs the whole flow and says so (exit 0)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.databases import Database

KEY_LINES = [
    r"shop-web: image .*:1\.0, HELD \(paused by migration shop-schema\)",
    r"shop-schema: Succeeded — upgrade base -> 0009_widen_product_name: 10 revision\(s\)",
    r"shop-web: image .*:1\.0, rolling out \(not held\)",
    r"== round 2",
    r"shop-schema: Failed — revision 0010_add_order_notes failed",
    r"log tail of the failed pod",
    r"the old version keeps serving: shop-web stays paused",
    r'alembic_operator_migrations_total\{.*result="failed"\} 1\.0',
    r"sandbox: everything behaved",
]


def run_sandbox(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic_operator", "sandbox", "--workdir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_timeline(output: str) -> None:
    position = 0
    for pattern in KEY_LINES:  # in this order
        found = re.compile(pattern).search(output, position)
        assert found, f"{pattern!r} missing (after position {position}):\n{output}"
        position = found.end()


def test_sandbox_on_sqlite(tmp_path: Path) -> None:
    done = run_sandbox(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_timeline(done.stdout)
    assert "UNEXPECTED" not in done.stdout


@pytest.mark.postgresql
def test_sandbox_on_postgresql(tmp_path: Path, pg_database: Database) -> None:
    done = run_sandbox(tmp_path, "--database-url", pg_database.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_timeline(done.stdout)
    assert pg_database.versions() == {"0009_widen_product_name"}
    assert "postgres@" not in done.stdout  # the URL stays in the Secret


def test_a_second_run_starts_from_a_fresh_database(tmp_path: Path) -> None:
    assert run_sandbox(tmp_path).returncode == 0
    again = run_sandbox(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_timeline(again.stdout)  # base -> head again, not "already at head"
