"""``make sandbox SANDBOX_ARGS=--keep``: the cluster stays up and the real kubectl works with the
kubeconfig it prints — apply, get (printer columns), logs, wait, describe. Stopped by PID, it
leaves no process behind.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.cluster.controlplane import REPO
from tests.cluster.fixtures import tool
from tests.sandbox.test_sandbox import sandbox_argv

STOPPED = 130


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: pid -> its start time (to tell a reused pid)."""
    parents: dict[int, int] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)], starts[int(entry.name)] = int(fields[1]), fields[19]
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = starts[child]
                frontier.append(child)
    return found


def alive(pid: int, start: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] == start and fields[0] != "Z"


class Output:
    """The sandbox's stdout, read by a thread so a test can wait for a line with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.text = ""
        assert process.stdout is not None
        stream = process.stdout
        threading.Thread(target=lambda: [self.lines.put(x) for x in stream], daemon=True).start()

    def until(self, pattern: str, *, within: float) -> re.Match[str]:
        deadline = time.monotonic() + within
        while True:
            found = re.search(pattern, self.text)
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{pattern!r} not printed within {within}s:\n{self.text}")
            try:
                self.text += self.lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue


def test_kept_sandbox_works_with_kubectl(tmp_path: Path) -> None:
    process = subprocess.Popen(
        sandbox_argv(tmp_path / "sandbox", "--keep"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Output(process)
    try:
        out.until(r"sandbox: everything behaved", within=300)
        kubeconfig = out.until(r"kubeconfig \(cluster admin, namespace default\): (\S+)", within=10)
        out.until(rf"kill {process.pid}\) to stop everything", within=10)

        def kubectl(*args: str) -> str:
            done = subprocess.run(
                [str(tool("kubectl")), f"--kubeconfig={kubeconfig.group(1)}", *args],
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            assert done.returncode == 0, f"kubectl {args}: {done.stdout}{done.stderr}"
            return done.stdout

        listed = kubectl("get", "dbm")
        assert re.search(r"NAME\s+PHASE\s+TARGET\s+CURRENT\s+DURATION\s+AGE\n", listed)
        wide = kubectl("get", "dbm", "-o", "wide")  # Message has priority 1
        assert re.search(r"AGE\s+MESSAGE\n.*revision 0010_add_order_notes failed", wide)
        assert re.search(r"shop-schema\s+Failed\s+head\s+0009_widen_product_name", listed)

        applied = kubectl("apply", "-f", str(REPO / "examples" / "sandbox" / "migration.yaml"))
        assert "databasemigration.alembic-operator.dev/shop-schema configured" in applied
        waited = kubectl("wait", "--for=condition=Ready", "dbm/shop-schema", "--timeout=120s")
        assert "condition met" in waited

        served = kubectl("logs", "deployment/shop-web")
        assert "shop: schema head 0009_widen_product_name; serving on http://127.0.0.1:" in served
        runner_logs = kubectl(
            "logs", "-l", "alembic-operator.dev/migration=shop-schema", "--tail=200", "--prefix"
        )
        assert "Running upgrade 0009_widen_product_name -> 0010_add_order_notes" in runner_logs

        described = kubectl("describe", "dbm", "shop-schema")
        assert re.search(r"Phase:\s+Succeeded", described)
        assert "MigrationFailed" in described and "MigrationSucceeded" in described
    finally:
        started = descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    assert code == STOPPED, out.text
    out.until(r"sandbox: stopped; everything it started has ended", within=5)
    assert started, "the kept sandbox had no processes of its own"
    deadline = time.monotonic() + 10  # orphans are reaped by init
    while (left := [p for p, s in started.items() if alive(p, s)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, {p: os.popen(f"ps -o args= -p {p}").read() for p in left}
