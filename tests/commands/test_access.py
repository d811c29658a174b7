"""Cluster access: no cluster at all (a closed port, no kubeconfig, an unknown context: exit 5),
and the real apiserver's access rules (RBAC denials and a rejected token: exit 6, said clearly).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import yaml

from tests.cluster.controlplane import ControlPlane
from tests.commands.fabricated import SQL, awaiting_approval, sql_data
from tests.commands.helpers import check_golden, cli, normalise_namespace, run_cli
from tests.commands.identities import narrow_kubeconfig, rule, token_kubeconfig
from tests.operator.harness import Cluster

HASH = "9f2c4e1a7b3d5f60"


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def bare_kubeconfig(path: Path, server: str, *, context: str = "local") -> Path:
    """A kubeconfig naming ``server`` and nothing else (no credentials, no namespace)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_unreachable_cluster(tmp_path: Path) -> None:
    port = _closed_port()
    kubeconfig = bare_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
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

    kubeconfig = bare_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1", context="mine")
    wrong = run_cli("status", "--context", "theirs", kubeconfig=kubeconfig)
    assert wrong.code == 5, wrong
    assert re.search(r"theirs", wrong.err), wrong


async def test_access_rules_of_the_real_apiserver(
    cluster: Cluster, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """A read-only on-call Role, no Role at all, a token the apiserver does not accept."""
    await cluster.stop_operator()  # the plan is written by hand
    await awaiting_approval(cluster, "shop", plan_hash=HASH, data=sql_data(SQL))
    in_ns = normalise_namespace(cluster.ns)

    # May read migrations and plans, may not approve (no patch).
    reader = await narrow_kubeconfig(
        control_plane,
        cluster.client,
        cluster.ns,
        "reader",
        [
            rule(["databasemigrations"], ["get", "list"]),
            rule(["configmaps"], ["get"], group=""),
        ],
        tmp_path / "reader",
    )
    status = await cli("status", "shop", kubeconfig=reader)
    assert status.code == 0, status
    assert status.out.splitlines()[1].split()[:2] == ["shop", "AwaitingApproval"]
    plan = await cli("plan", "shop", kubeconfig=reader)
    assert plan.code == 0, plan
    assert f"plan hash:    {HASH}\n" in plan.out
    approve = await cli("approve", "shop", kubeconfig=reader)
    check_golden("forbidden_patch", approve.transcript(), in_ns)
    annotations = (await cluster.get("shop"))["metadata"].get("annotations") or {}
    assert "alembic-operator.dev/approve" not in annotations
    everywhere = await cli("status", "-A", kubeconfig=reader)  # a Role is one namespace's
    assert everywhere.code == 6, everywhere
    assert "cannot list resource" in everywhere.err and "at the cluster scope" in everywhere.err

    # No Role at all.
    nobody = await narrow_kubeconfig(
        control_plane, cluster.client, cluster.ns, "nobody", [], tmp_path / "nobody"
    )
    check_golden("forbidden_list", (await cli("status", kubeconfig=nobody)).transcript(), in_ns)

    # A token the apiserver does not accept: 401.
    forged = token_kubeconfig(
        control_plane, tmp_path / "forged", "not-a-token", cluster.ns, user="forged"
    )
    unauthorized = await cli("status", kubeconfig=forged)
    check_golden("unauthorized", unauthorized.transcript())
