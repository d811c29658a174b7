"""Cluster access without a cluster: a closed port, no kubeconfig, an unknown context (exit 5)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from alembic_operator.emulation.kubeconfig import write_kubeconfig
from tests.commands.helpers import check_golden, run_cli


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_unreachable_cluster(tmp_path: Path) -> None:
    port = _closed_port()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    for args in (("status",), ("status", "shop"), ("approve", "shop"), ("logs", "shop")):
        result = run_cli(*args, kubeconfig=kubeconfig)
        assert result.code == 5, result
        assert result.err.startswith(f"error: cannot reach the cluster at http://127.0.0.1:{port}")
    check_golden(
        "unreachable",
        run_cli("status", kubeconfig=kubeconfig).transcript(),
        lambda text: text.replace(str(port), "PORT"),
    )


def test_no_kubeconfig_and_unknown_context(tmp_path: Path) -> None:
    missing = run_cli("status", "--kubeconfig", str(tmp_path / "nope"))
    assert missing.code == 5, missing
    assert missing.err.startswith("error: cannot load the cluster configuration")

    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1", name="mine")
    wrong = run_cli("status", "--context", "theirs", kubeconfig=kubeconfig)
    assert wrong.code == 5, wrong
    assert re.search(r"theirs", wrong.err), wrong
