"""Migrations whose status the test writes itself (the operator is stopped first).

They stand in for what the operator's approval flow produces: phase AwaitingApproval, a plan in
``status.plan`` and its ConfigMap, following the contract the CLI is built against.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tests.operator.harness import Cluster, migration

WHEN = "2025-03-01T12:00:00Z"
SQL = (
    "BEGIN;\n\n"
    "-- Running upgrade 0009_widen_product_name -> 0010_audit_log\n\n"
    "CREATE TABLE audit_log (\n"
    "    id SERIAL NOT NULL,\n"
    "    event VARCHAR(200) NOT NULL,\n"
    "    PRIMARY KEY (id)\n"
    ");\n\n"
    "UPDATE alembic_version SET version_num='0010_audit_log' "
    "WHERE alembic_version.version_num = '0009_widen_product_name';\n\n"
    "-- Running upgrade 0010_audit_log -> 0011_audit_index\n\n"
    "CREATE INDEX ix_audit_log_event ON audit_log (event);\n\n"
    "UPDATE alembic_version SET version_num='0011_audit_index' "
    "WHERE alembic_version.version_num = '0010_audit_log';\n\n"
    "COMMIT;\n\n"
)
REVISIONS = ["0010_audit_log", "0011_audit_index"]


def conditions(phase: str, reason: str, message: str) -> list[dict[str, Any]]:
    stalled = phase == "Failed"
    reconciling = phase in ("Planning", "Running", "Pending", "AwaitingApproval")
    return [
        {
            "type": "Ready",
            "status": "True" if phase == "Succeeded" else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": WHEN,
        },
        {
            "type": "Reconciling",
            "status": "True" if reconciling else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": WHEN,
        },
        {
            "type": "Stalled",
            "status": "True" if stalled else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": WHEN,
        },
    ]


def sql_data(sql: str, *, chunk: int | None = None) -> dict[str, str]:
    raw = sql.encode()
    data = {"sqlBytes": str(len(raw)), "sqlSha256": hashlib.sha256(raw).hexdigest()}
    if chunk is None:
        data["sql"] = sql
    else:
        for n, start in enumerate(range(0, len(sql), chunk)):
            data[f"sql.{n:03d}"] = sql[start : start + chunk]
    return data


async def awaiting_approval(
    cluster: Cluster,
    name: str,
    *,
    plan_hash: str,
    data: dict[str, str],
    revisions: list[str] = REVISIONS,
    direction: str = "upgrade",
    held: list[str] | None = None,
) -> dict[str, Any]:
    """A suspended migration with a pending plan (status written directly) and its ConfigMap."""
    created = await cluster.create(
        migration(name, suspend=True, approval={"required": True}, revision=revisions[-1])
    )
    configmap = f"{name}-plan"
    destructive = direction == "downgrade"
    await cluster.client.ok(
        "POST",
        cluster.CONFIGMAPS,
        {
            "metadata": {"name": configmap},
            "data": {
                "hash": plan_hash,
                "direction": direction,
                "destructive": "true" if destructive else "false",
                "revisions": "\n".join(revisions) + "\n",
                **data,
            },
        },
    )
    message = (
        f"plan {plan_hash} awaits approval: kubectl annotate dbm {name} "
        f"alembic-operator.dev/approve={plan_hash}"
    )
    status: dict[str, Any] = {
        "observedGeneration": created["metadata"]["generation"],
        "phase": "AwaitingApproval",
        "conditions": conditions("AwaitingApproval", "ApprovalPending", message),
        "targetRevision": revisions[-1],
        "currentRevision": "0009_widen_product_name",
        "message": message,
        "attempts": 0,
        "plan": {
            "hash": plan_hash,
            "revisions": revisions,
            "direction": direction,
            "destructive": destructive,
            "sqlConfigMap": configmap,
            "generation": created["metadata"]["generation"],
        },
        "gate": {"held": bool(held), "deployments": held or []},
    }
    return await write_status(cluster, name, status)


async def succeeded(cluster: Cluster, name: str) -> dict[str, Any]:
    """A suspended migration that reports a finished run and holds no plan."""
    await cluster.create(migration(name, suspend=True))
    status = {
        "phase": "Succeeded",
        "conditions": conditions("Succeeded", "Applied", "database at 0009_widen_product_name"),
        "targetRevision": "0009_widen_product_name",
        "currentRevision": "0009_widen_product_name",
        "attempts": 1,
    }
    return await write_status(cluster, name, status)


async def write_status(cluster: Cluster, name: str, status: dict[str, Any]) -> dict[str, Any]:
    return await cluster.client.ok(
        "PATCH",
        f"{cluster.DBM}/{name}/status",
        {"status": status},
        content_type="application/merge-patch+json",
    )
