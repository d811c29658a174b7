"""`status`, `plan`, `approve`, `reject`, `retry` and the error exits against the emulator.

The approval flow of the operator is simulated: the operator is stopped, then migrations are
created suspended and their status (phase AwaitingApproval, ``status.plan``) is written directly
with the plan's ConfigMap next to them, as the contract in docs/cli.md describes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.commands.fabricated import CONFIGMAPS, SQL, awaiting_approval, sql_data, succeeded
from tests.commands.helpers import KUBECTL_PLUGIN, check_golden, cli, normalise_age, run_cli
from tests.conftest import REPO
from tests.operator.harness import Cluster

HASH = "9f2c4e1a7b3d5f60"
OTHER_HASH = "1111111111111111"
APPROVE = "alembic-operator.dev/approve"
REJECT = "alembic-operator.dev/reject"
_VOLATILE = re.compile(
    r'("?(?:uid|resourceVersion|creationTimestamp)"?:\s*)("[^"]*"|\S+)', re.MULTILINE
)


def normalise_metadata(text: str) -> str:
    def placeholder(match: re.Match[str]) -> str:
        key = match.group(1).strip(': "')
        return f"{match.group(1)}<{key}>"

    return _VOLATILE.sub(placeholder, text)


async def _annotations(cluster: Cluster, name: str) -> dict[str, str]:
    return dict((await cluster.get(name))["metadata"].get("annotations") or {})


async def _setup(cluster: Cluster) -> None:
    await cluster.stop_operator()  # the approval flow is written by hand below
    await awaiting_approval(
        cluster, "shop", plan_hash=HASH, data=sql_data(SQL), held=["web", "worker"]
    )
    await awaiting_approval(cluster, "chunked", plan_hash=OTHER_HASH, data=sql_data(SQL, chunk=100))
    await awaiting_approval(
        cluster,
        "huge",
        plan_hash="2222222222222222",
        data={"sqlOmitted": "the SQL is 3.1 MiB, more than the 900 KiB a ConfigMap may hold"},
    )
    broken = sql_data(SQL, chunk=100)
    del broken["sql.001"]
    await awaiting_approval(cluster, "gap", plan_hash="3333333333333333", data=broken)
    await awaiting_approval(
        cluster,
        "rollback",
        plan_hash="4444444444444444",
        data=sql_data("DROP TABLE audit_log;\n"),
        revisions=["0010_audit_log"],
        direction="downgrade",
    )
    await succeeded(cluster, "done")


async def test_plans_and_approvals(cluster: Cluster, tmp_path: Path) -> None:
    await _setup(cluster)

    status = await cli("status")
    assert status.code == 0, status
    check_golden("status_awaiting", status.transcript(), normalise_age)

    as_json = await cli("status", "shop", "-o", "json")
    assert as_json.code == 0, as_json
    obj = json.loads(as_json.out)
    assert obj["status"]["plan"]["hash"] == HASH
    check_golden("status_json", as_json.transcript(), normalise_metadata)
    as_yaml = await cli("status", "shop", "-o", "yaml")
    assert yaml.safe_load(as_yaml.out) == obj
    check_golden("status_yaml", as_yaml.transcript(), normalise_metadata)
    listed = json.loads((await cli("status", "-o", "json")).out)
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == sorted(
        ["shop", "chunked", "huge", "gap", "rollback", "done"]
    )

    plan = await cli("plan", "shop")
    assert plan.code == 0, plan
    assert SQL.rstrip("\n") in plan.out
    check_golden("plan", plan.transcript())
    chunked = await cli("plan", "chunked", "--sql-only")
    assert (chunked.code, chunked.out) == (0, SQL)
    check_golden("plan_omitted", (await cli("plan", "huge")).transcript())
    gap = await cli("plan", "gap")
    assert gap.code == 1
    check_golden("plan_incomplete", gap.transcript())
    check_golden("plan_none", (await cli("plan", "done")).transcript())

    # Approvals: refused unless a plan is pending, and only for the plan that is pending.
    check_golden("approve_not_awaiting", (await cli("approve", "done")).transcript())
    wrong = await cli("approve", "shop", "--plan-hash", OTHER_HASH)
    check_golden("approve_wrong_hash", wrong.transcript())
    assert APPROVE not in await _annotations(cluster, "shop")
    approved = await cli("approve", "shop", "--plan-hash", HASH)
    check_golden("approve", approved.transcript())
    assert (await _annotations(cluster, "shop"))[APPROVE] == HASH
    check_golden("approve_destructive", (await cli("approve", "rollback")).transcript())

    rejected = await cli("reject", "chunked")
    check_golden("reject", rejected.transcript())
    annotations = await _annotations(cluster, "chunked")
    assert annotations[REJECT] == OTHER_HASH
    assert APPROVE not in annotations

    check_golden("retry_not_failed", (await cli("retry", "shop")).transcript())
    assert (await cli("reject", "done")).code == 3

    # The kubectl plugin entry point runs the same commands.
    plugin = await asyncio.to_thread(run_cli, "status", "done", program=KUBECTL_PLUGIN)
    assert plugin.code == 0, plugin
    assert plugin.out.splitlines()[1].split()[:2] == ["done", "Succeeded"]
    kubectl = shutil.which("kubectl") or shutil.which("kubectl", path=str(REPO / ".tools" / "bin"))
    if kubectl is not None:  # kubectl finds the plugin on PATH (as pip installs kubectl-dbm)
        shims = tmp_path / "bin"
        shims.mkdir()
        shim = shims / "kubectl-dbm"
        code = KUBECTL_PLUGIN[1]
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{code}" "$@"\n')
        shim.chmod(0o755)
        env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
        done = await asyncio.to_thread(
            subprocess.run,
            [kubectl, "dbm", "status", "done"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done
        assert done.stdout.splitlines()[1].split()[:2] == ["done", "Succeeded"]
        missing = await asyncio.to_thread(
            subprocess.run, [kubectl, "dbm", "plan", "nosuch"], env=env, capture_output=True
        )
        assert missing.returncode == 4


async def test_missing_forbidden_and_bad_usage(cluster: Cluster, tmp_path: Path) -> None:
    await cluster.stop_operator()
    await succeeded(cluster, "done")

    missing = await cli("status", "nosuch")
    check_golden("missing", missing.transcript())
    other = await cli("approve", "done", "-n", "other")
    assert other.code == 4
    assert other.err == "error: databasemigration done not found in namespace other\n"
    assert (await cli("plan", "nosuch")).code == 4
    assert (await cli("logs", "nosuch")).code == 4
    assert (await cli("retry", "nosuch")).code == 4
    await awaiting_approval(cluster, "orphan", plan_hash=HASH, data=sql_data(SQL))
    await cluster.client.ok("DELETE", f"{CONFIGMAPS}/orphan-plan")
    orphan = await cli("plan", "orphan")
    assert orphan.code == 4
    assert orphan.err == "error: configmap orphan-plan not found in namespace default\n"
    assert f"plan hash:    {HASH}\n" in orphan.out

    # The namespace defaults to the context's; -n overrides it.
    elsewhere = cluster.proxy.write_kubeconfig(tmp_path / "elsewhere", namespace="other")
    in_other = await cli("status", "done", kubeconfig=elsewhere)
    assert in_other.err == "error: databasemigration done not found in namespace other\n"
    assert (await cli("status", "done", "-n", "default", kubeconfig=elsewhere)).code == 0
    context = "alembic-operator-emulator"
    assert (await cli("status", "done", "--context", context, "-n", "default")).code == 0

    assert (await cli("status", "-A", "done")).code == 2
    usage = await cli("approve")
    assert usage.code == 2
    assert "the following arguments are required: NAME" in usage.err
    assert (await cli("status", "-o", "wide")).code == 2
    assert (await cli("frobnicate")).code == 2

    # RBAC: get is denied (list is still allowed).
    cluster.proxy.inject_fault(verb="get", plural="databasemigrations", status=403, times=None)
    forbidden = await cli("status", "done")
    check_golden("forbidden", forbidden.transcript())
    assert (await cli("approve", "done")).code == 6
    assert (await cli("status")).code == 0
