"""Plans and approvals: the plan's hash, its ConfigMap, and what the annotations ask for.

A plan is what a plan-mode run found (revisions, direction, offline SQL) for one generation,
image and starting revision. Its hash covers all of those, so an approval names exactly one
plan: a new image or revision is a new generation (a new plan), and a database that moved makes
the approved plan outdated (the runner refuses it and a new plan is rendered). Pure: no I/O.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from alembic_operator.core.jobs import label_value, owner_reference
from alembic_operator.core.names import plan_config_map_name
from alembic_operator.model.migrations import Migration
from alembic_operator.model.results import RunnerResult
from alembic_operator.model.spec import GROUP

APPROVE_ANNOTATION = f"{GROUP}/approve"
REJECT_ANNOTATION = f"{GROUP}/reject"
SQL_LINE_PREFIX = "SQL| "  # the runner's ``--sql-file=-prefixed`` output
# A ConfigMap holds at most 1 MiB; keep room for the other keys and the object itself.
CONFIG_MAP_SQL_BUDGET = 900 * 1024
SQL_CHUNK_BYTES = 256 * 1024


class Approval(enum.Enum):
    NONE = "none"
    APPROVED = "approved"
    REJECTED = "rejected"
    MISMATCH = "mismatch"  # an annotation names another (older) plan


@dataclass(frozen=True)
class RenderedPlan:
    hash: str
    sql: str
    config_map: dict[str, Any]


def requires_plan(migration: Migration) -> bool:
    return migration.spec.approval_required or migration.spec.dry_run


def plan_sql(output: str) -> str:
    """The SQL lines of a plan pod's log (other log lines interleave with them)."""
    lines = [
        line[len(SQL_LINE_PREFIX) :]
        for line in output.splitlines()
        if line.startswith(SQL_LINE_PREFIX)
    ]
    return "\n".join(lines) + "\n" if lines else ""


def plan_hash(migration: Migration, result: RunnerResult) -> str:
    plan = result.plan
    body = {
        "generation": migration.ref.generation,
        "image": migration.spec.image,
        "target": migration.spec.revision,
        "from": sorted(result.from_revisions),
        "revisions": list(plan.revisions) if plan else [],
        "direction": plan.direction if plan else "none",
        "sql": plan.sql_sha256 if plan else "",
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def render_plan(migration: Migration, result: RunnerResult, *, output: str) -> RenderedPlan:
    """The plan's hash and its ConfigMap (owned by the migration) from a plan run."""
    digest = plan_hash(migration, result)
    sql = plan_sql(output)
    plan = result.plan
    data = {
        "hash": digest,
        "direction": plan.direction if plan else "none",
        "destructive": "true" if plan and plan.destructive else "false",
        "revisions": "\n".join(plan.revisions) if plan else "",
        "fromRevision": ",".join(result.from_revisions),
        "sqlSha256": plan.sql_sha256 if plan else "",
        "sqlBytes": str(plan.sql_bytes if plan else 0),
    }
    data.update(_sql_keys(sql, expected_bytes=plan.sql_bytes if plan else 0))
    ref = migration.ref
    name = plan_config_map_name(ref, digest)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": ref.namespace,
            "labels": {
                f"{GROUP}/migration": label_value(ref.name),
                f"{GROUP}/migration-uid": ref.uid,
                f"{GROUP}/plan": digest,
            },
            "ownerReferences": [owner_reference(ref)],
        },
        "data": data,
    }
    return RenderedPlan(hash=digest, sql=sql, config_map=config_map)


def _sql_keys(sql: str, *, expected_bytes: int) -> dict[str, str]:
    encoded = sql.encode("utf-8")
    if expected_bytes and len(encoded) != expected_bytes:
        return {
            "sqlOmitted": (
                f"the plan Job's log held {len(encoded)} of the {expected_bytes} bytes of SQL the "
                "runner rendered (the log was cut); see the plan Job's log"
            )
        }
    if len(encoded) > CONFIG_MAP_SQL_BUDGET:
        return {
            "sqlOmitted": (
                f"the SQL is {len(encoded)} bytes, more than a ConfigMap holds "
                f"({CONFIG_MAP_SQL_BUDGET} bytes); it is in the plan Job's log"
            )
        }
    if len(encoded) <= SQL_CHUNK_BYTES:
        return {"sql": sql}
    chunks: dict[str, str] = {}
    start = 0
    while start < len(encoded):
        piece = encoded[start : start + SQL_CHUNK_BYTES]
        # Never split a UTF-8 character across chunks.
        while piece and (piece[-1] & 0xC0) == 0x80 and start + len(piece) < len(encoded):
            piece = piece[:-1]
        chunks[f"sql.{len(chunks):03d}"] = piece.decode("utf-8", errors="strict")
        start += len(piece)
    return chunks


def approval(migration: Migration) -> Approval:
    """What the annotations say about the current plan."""
    plan = migration.status.plan
    approve = migration.annotations.get(APPROVE_ANNOTATION)
    reject = migration.annotations.get(REJECT_ANNOTATION)
    if plan is None or plan.hash is None:
        return Approval.NONE
    if reject == plan.hash:
        return Approval.REJECTED
    if approve == plan.hash:
        return Approval.APPROVED
    if approve or reject:
        return Approval.MISMATCH
    return Approval.NONE
