"""Smoke test: every benchmark runs in a tiny mode and writes its section.

The benchmarks themselves are not part of the suite's pass/fail (goals may be missed: exit
status 3); this only proves the scripts work. The cluster benchmarks each start a real local
control plane (etcd, kube-apiserver, kube-controller-manager) of their own; they run at the same
time here, since most of each run is waiting for start-ups, and each is checked on its own.
"""

from __future__ import annotations

import subprocess
import sys
import time
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
    "admission": ["--rounds", "1", "--seconds", "0.5", "--rate", "20"],
    "throughput": ["--rounds", "1", "--migrations", "3", "--namespaces", "2"],
}
SECTIONS = {name: name for name in TINY} | {"operator_footprint": "footprint"}
# Not goals (those may be missed) but the method's own preconditions, met in any run.
METHOD = {
    # The raw Jobs' namespaces are outside the pod webhook: the baseline pays nothing for it.
    "throughput": "baseline 0: **met**",
}
GOAL_MISSED = 3
DEADLINE = 300


@pytest.mark.postgresql  # runner, rollout: PostgreSQL databases
def test_every_benchmark_runs_in_tiny_mode(tmp_path: Path) -> None:
    runs = {}
    for bench, args in TINY.items():
        out, log = tmp_path / f"{bench}.md", (tmp_path / f"{bench}.log").open("w")
        argv = [sys.executable, str(REPO / "bench" / f"{bench}.py"), *args, "--out", str(out)]
        runs[bench] = (subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT), out)
    started = time.monotonic()
    deadline = started + DEADLINE
    problems = []
    for bench, (process, out) in runs.items():
        try:
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
            problems.append(f"{bench}: still running after {DEADLINE} s")
        log = (tmp_path / f"{bench}.log").read_text()
        print(f"{bench}: exit {code} after {time.monotonic() - started:.0f} s")
        if code not in (0, GOAL_MISSED):
            problems.append(f"{bench} exited {code}:\n{log[-3000:]}")
        elif f"<!-- bench:{SECTIONS[bench]} -->" not in out.read_text():
            problems.append(f"{bench} wrote no section to {out}:\n{log[-1000:]}")
        elif METHOD.get(bench, "") not in out.read_text():
            problems.append(f"{bench}: no {METHOD[bench]!r} in its section:\n{out.read_text()}")
    assert not problems, "\n\n".join(problems)


def test_make_bench_runs_every_benchmark() -> None:
    """`make bench` (bench/run_all.sh) runs each benchmark the smoke run knows, and no other."""
    script = (REPO / "bench" / "run_all.sh").read_text()
    loops = [line for line in script.splitlines() if line.startswith("for bench in ")]
    assert len(loops) == 1, script
    listed = loops[0].removeprefix("for bench in ").split(";")[0].split()
    assert sorted(listed) == sorted(TINY)
