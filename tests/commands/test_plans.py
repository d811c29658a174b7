"""`status`, `plan`, `approve`, `reject`, `retry` and the error exits on the real apiserver.

The approval flow of the operator is simulated: the operator is stopped, then migrations are
created suspended and their status (phase AwaitingApproval, ``status.plan``) is written directly
with the plan's ConfigMap next to them, as the contract in docs/cli.md describes. The CLI runs
as a person (the cluster admin, or a ServiceAccount with a narrow Role for the RBAC denial), with
this test's namespace as its context's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.cluster.controlplane import ControlPlane, write_kubeconfig
from tests.cluster.fixtures import tool
from tests.commands.fabricated import SQL, awaiting_approval, sql_data, succeeded
from tests.commands.helpers import (
    KUBECTL_PLUGIN,
    OnCall,
    Result,
    check_golden,
    cli,
    normalise_age,
    normalise_namespace,
    run_cli,
)
from tests.commands.identities import narrow_kubeconfig, rule
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


async def _at_once(oncall: OnCall, *invocations: tuple[str, ...]) -> list[Result]:
    """Independent CLI runs (no run changes what another reads) started together: each is a
    process of its own, so their start-ups overlap instead of adding up."""
    return list(await asyncio.gather(*(oncall(*args) for args in invocations)))


async def test_plans_and_approvals(cluster: Cluster, oncall: OnCall) -> None:
    await _setup(cluster)
    in_ns = normalise_namespace(cluster.ns)

    # What only reads (refused approvals write nothing: checked below), all at once.
    (
        status, as_json, as_yaml, listed_json, plan, chunked, huge, gap, none, not_awaiting, wrong
    ) = await _at_once(
        oncall,
        ("status",),
        ("status", "shop", "-o", "json"),
        ("status", "shop", "-o", "yaml"),
        ("status", "-o", "json"),
        ("plan", "shop"),
        ("plan", "chunked", "--sql-only"),
        ("plan", "huge"),
        ("plan", "gap"),
        ("plan", "done"),
        ("approve", "done"),
        ("approve", "shop", "--plan-hash", OTHER_HASH),
    )  # fmt: skip
    assert status.code == 0, status
    check_golden("status_awaiting", status.transcript(), normalise_age)

    assert as_json.code == 0, as_json
    obj = json.loads(as_json.out)
    assert obj["status"]["plan"]["hash"] == HASH
    check_golden("status_json", as_json.transcript(), normalise_metadata, in_ns)
    assert yaml.safe_load(as_yaml.out) == obj
    check_golden("status_yaml", as_yaml.transcript(), normalise_metadata, in_ns)
    listed = json.loads(listed_json.out)
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == sorted(
        ["shop", "chunked", "huge", "gap", "rollback", "done"]
    )

    assert plan.code == 0, plan
    assert SQL.rstrip("\n") in plan.out
    check_golden("plan", plan.transcript(), in_ns)
    assert (chunked.code, chunked.out) == (0, SQL)
    check_golden("plan_omitted", huge.transcript(), in_ns)
    assert gap.code == 1
    check_golden("plan_incomplete", gap.transcript(), in_ns)
    check_golden("plan_none", none.transcript())

    # Approvals: refused unless a plan is pending, and only for the plan that is pending.
    check_golden("approve_not_awaiting", not_awaiting.transcript())
    check_golden("approve_wrong_hash", wrong.transcript())
    assert APPROVE not in await _annotations(cluster, "shop")
    # Each of these writes a different migration.
    approved, destructive, rejected = await _at_once(
        oncall,
        ("approve", "shop", "--plan-hash", HASH),
        ("approve", "rollback"),
        ("reject", "chunked"),
    )
    check_golden("approve", approved.transcript(), in_ns)
    assert (await _annotations(cluster, "shop"))[APPROVE] == HASH
    check_golden("approve_destructive", destructive.transcript(), in_ns)

    check_golden("reject", rejected.transcript(), in_ns)
    annotations = await _annotations(cluster, "chunked")
    assert annotations[REJECT] == OTHER_HASH
    assert APPROVE not in annotations

    not_failed, reject_done = await _at_once(oncall, ("retry", "shop"), ("reject", "done"))
    check_golden("retry_not_failed", not_failed.transcript())
    assert reject_done.code == 3
    await _plugin_entry_points(oncall)


async def _plugin_entry_points(oncall: OnCall) -> None:
    """The kubectl plugin entry point runs the same commands, directly and through kubectl."""
    # The real kubectl finds the installed `kubectl-dbm` on PATH (pip puts it beside python).
    plugin_bin = Path(sys.executable).parent
    assert (plugin_bin / "kubectl-dbm").exists(), (
        f"no kubectl-dbm in {plugin_bin}: pip install -e ."
    )
    env = {
        **os.environ,
        "PATH": f"{plugin_bin}{os.pathsep}{os.environ['PATH']}",
        "KUBECONFIG": str(oncall.kubeconfig),
    }
    kubectl = str(tool("kubectl"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    plugin, done, missing = await asyncio.gather(
        asyncio.to_thread(
            run_cli, "status", "done", kubeconfig=oncall.kubeconfig, program=KUBECTL_PLUGIN
        ),
        asyncio.to_thread(run, "dbm", "status", "done"),
        asyncio.to_thread(run, "dbm", "plan", "nosuch"),
    )
    assert plugin.code == 0, plugin
    assert plugin.out.splitlines()[1].split()[:2] == ["done", "Succeeded"]
    assert done.returncode == 0, done
    assert done.stdout.splitlines()[1].split()[:2] == ["done", "Succeeded"]
    assert missing.returncode == 4, missing


async def test_missing_forbidden_and_bad_usage(
    cluster: Cluster, oncall: OnCall, control_plane: ControlPlane, tmp_path: Path
) -> None:
    await cluster.stop_operator()
    await succeeded(cluster, "done")
    await awaiting_approval(cluster, "orphan", plan_hash=HASH, data=sql_data(SQL))
    await cluster.client.ok("DELETE", f"{cluster.CONFIGMAPS}/orphan-plan")
    # The namespace defaults to the context's; -n overrides it.
    elsewhere = write_kubeconfig(
        tmp_path / "elsewhere",
        server=control_plane.server,
        ca=control_plane.ca.cert,
        user="admin",
        client=control_plane.admin,
        namespace="other",
    )
    # RBAC: get is denied (list is still allowed): a real Role on the real apiserver.
    lister = await narrow_kubeconfig(
        control_plane,
        cluster.client,
        cluster.ns,
        "lister",
        [rule(["databasemigrations"], ["list"])],
        tmp_path / "lister",
    )
    # None of these writes anything (refusals and errors), so they run at once.
    as_person = [
        ("status", "nosuch"),
        ("approve", "done", "-n", "other"),
        ("plan", "nosuch"),
        ("logs", "nosuch"),
        ("retry", "nosuch"),
        ("plan", "orphan"),
        ("status", "-A", "done"),
        ("approve",),
        ("status", "-o", "wide"),
        ("frobnicate",),
    ]
    as_others = [
        (elsewhere, ("status", "done")),
        (elsewhere, ("status", "done", "-n", cluster.ns)),
        (elsewhere, ("status", "done", "--context", "local")),
        (elsewhere, ("status", "done", "--context", "local", "-n", cluster.ns)),
        (lister, ("status", "done")),
        (lister, ("approve", "done")),
        (lister, ("status",)),
    ]
    (missing, other, plan, logs, retry, orphan, all_and_name, usage, wide, unknown,
     in_other, named, in_context_other, in_context, forbidden, approve_denied, listed) = (
        await asyncio.gather(
            *(oncall(*args) for args in as_person),
            *(cli(*args, kubeconfig=config) for config, args in as_others),
        )
    )  # fmt: skip

    check_golden("missing", missing.transcript(), normalise_namespace(cluster.ns))
    assert other.code == 4
    assert other.err == "error: databasemigration done not found in namespace other\n"
    assert plan.code == 4
    assert logs.code == 4
    assert retry.code == 4
    assert orphan.code == 4
    assert orphan.err == f"error: configmap orphan-plan not found in namespace {cluster.ns}\n"
    assert f"plan hash:    {HASH}\n" in orphan.out

    assert in_other.err == "error: databasemigration done not found in namespace other\n"
    assert named.code == 0
    assert in_context_other.code == 4
    assert in_context.code == 0, in_context

    assert all_and_name.code == 2
    assert usage.code == 2
    assert "the following arguments are required: NAME" in usage.err
    assert wide.code == 2
    assert unknown.code == 2

    check_golden("forbidden", forbidden.transcript(), normalise_namespace(cluster.ns))
    assert approve_denied.code == 6
    assert listed.code == 0, listed
    assert listed.out.splitlines()[1].split()[:2] == ["done", "Succeeded"]
