"""The local control plane leaves nothing behind: stopped by PID, and dead with its starter."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tests.kubelet.helpers import pid_alive

STARTER = """
import json, sys, time
from tests.cluster.controlplane import ControlPlane
plane = ControlPlane(keep_folder=True).start()
pids = {name: p.pid for name, p in plane.processes.items()}
print(json.dumps({"pids": pids, "folder": str(plane.folder)}), flush=True)
time.sleep(600)
"""


def test_a_killed_starter_takes_its_control_plane_with_it() -> None:
    """SIGKILL leaves no chance to clean up: PR_SET_PDEATHSIG ends etcd and the rest anyway."""
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None
    started = json.loads(starter.stdout.readline())
    pids = started["pids"]
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    assert all(pid_alive(pid) for pid in pids.values())
    starter.send_signal(signal.SIGKILL)
    starter.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(pid_alive(pid) for pid in pids.values()):
        assert time.monotonic() < deadline, f"still running: {pids}"
        time.sleep(0.1)
    shutil.rmtree(started["folder"], ignore_errors=True)
    assert not Path(started["folder"]).exists()
