"""Smoke test: every benchmark runs in a tiny mode and writes its section.

The benchmarks themselves are not part of the suite's pass/fail (goals may be missed: exit
status 3); this only proves the scripts work. operator_footprint runs on a real local control
plane (etcd, kube-apiserver, kube-controller-manager), started by the benchmark itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TINY = {
    "runner": ["--sizes", "3", "--rounds", "1"],
    "operator_footprint": [
        *("--rounds", "1", "--settle", "0.3", "--window", "0.5"),
        *("--deployments", "20", "--migrations", "5", "--namespaces", "2"),
    ],
    "rollout": [
        *("--rounds", "1", "--revisions", "2", "--replicas", "1", "--scenarios", "install"),
        *("--settle", "0.2", "--quiet", "0.5"),
    ],
}
SECTIONS = {
    "runner": "runner",
    "operator_footprint": "footprint",
    "rollout": "rollout",
}
GOAL_MISSED = 3


@pytest.mark.parametrize(
    "bench",
    [
        pytest.param("runner", marks=pytest.mark.postgresql),
        "operator_footprint",  # starts a real local control plane (tests/cluster)
        pytest.param("rollout", marks=pytest.mark.postgresql),  # the sandbox's cluster + helm
    ],
)
def test_benchmark_runs_in_tiny_mode(bench: str, tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / f"{bench}.py"), *TINY[bench], "--out", str(out)],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, GOAL_MISSED), done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text()
    assert f"<!-- bench:{SECTIONS[bench]} -->" in text
    assert "| goal |" in text or "goal" in text
