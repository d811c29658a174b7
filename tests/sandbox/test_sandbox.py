"""The README's first command: the sandbox runs the whole flow on a real local control plane and
says so (exit 0). The PostgreSQL variant, which creates its database, runs in container mode
(tests/sandbox/test_containers.py).

Each run starts its own etcd, kube-apiserver and kube-controller-manager (≈10-25 s on 2 cores).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.cluster.controlplane import REPO

KEY_LINES = [
    r"shop-web: image .*:1\.0, HELD \(paused by migration shop-schema\)",
    r"shop-schema: Succeeded — upgrade base -> 0009_widen_product_name: 10 revision\(s\)",
    r"shop-web: image .*:1\.0, rolling out \(not held\)",
    r"shop-web serves: 2 pod\(s\) of .*:1\.0 running",
    r"== round 2",
    r"shop-schema: Failed — revision 0010_add_order_notes failed",
    r"log tail of the failed pod",
    r"the old version keeps serving: shop-web stays paused, 2 pod\(s\) of .*:1\.0, none of the "
    r"broken image",
    r'alembic_operator_migrations_total\{.*result="failed"\} 1\.0',
    r"sandbox: everything behaved",
]


def sandbox_argv(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.cluster.sandbox", "--workdir", str(workdir), *args]


def run_sandbox(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        sandbox_argv(tmp_path, *args),
        cwd=REPO,
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


def test_sandbox_on_sqlite_twice_from_a_fresh_database(tmp_path: Path) -> None:
    """Two runs in one workdir (each starts its own control plane: ≈30 s a run)."""
    first = run_sandbox(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert_timeline(first.stdout)
    assert "UNEXPECTED" not in first.stdout
    assert not (tmp_path / "cluster").exists()  # the control plane's folder is removed
    again = run_sandbox(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_timeline(again.stdout)  # base -> head again, not "already at head"
