"""``approve``/``reject`` the pending plan, ``retry`` a failed migration: annotations only.

The operator acts on them (docs/operator.md); these commands refuse (exit 3) when the
migration is not in the state the annotation is meant for, so a script cannot approve blindly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TextIO

from alembic_operator.commands.clusters import EXIT_REFUSED, GROUP, Cluster, CommandError
from alembic_operator.commands.tables import plan_decision

APPROVE_ANNOTATION = f"{GROUP}/approve"
REJECT_ANNOTATION = f"{GROUP}/reject"
RETRY_ANNOTATION = f"{GROUP}/retry"


def _pending_plan(obj: dict[str, Any], verb: str, expected_hash: str | None) -> str:
    name = obj["metadata"]["name"]
    status = obj.get("status") or {}
    phase = status.get("phase") or "Pending"
    plan_hash = (status.get("plan") or {}).get("hash")
    if phase != "AwaitingApproval" or not plan_hash:
        raise CommandError(
            f"refusing to {verb} databasemigration {name}: it is {phase}, not AwaitingApproval "
            "with a stored plan (nothing to " + verb + ")",
            EXIT_REFUSED,
        )
    if expected_hash is not None and expected_hash != plan_hash:
        raise CommandError(
            f"refusing to {verb} databasemigration {name}: its pending plan is {plan_hash}, "
            f"not {expected_hash} (the plan changed: review it again with `plan {name}`)",
            EXIT_REFUSED,
        )
    return str(plan_hash)


def run_decision(
    cluster: Cluster, out: TextIO, *, name: str, approve: bool, expected_hash: str | None
) -> int:
    verb = "approve" if approve else "reject"
    obj = cluster.get_migration(name)
    plan_hash = _pending_plan(obj, verb, expected_hash)
    key = APPROVE_ANNOTATION if approve else REJECT_ANNOTATION
    cluster.annotate_migration(name, {key: plan_hash})
    out.write(plan_decision("approved" if approve else "rejected", obj))
    out.write(f"annotated {key}={plan_hash}\n")
    return 0


def retry_token(now: datetime) -> str:
    """A new annotation value: the UTC time to the microsecond."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run_retry(cluster: Cluster, out: TextIO, *, name: str) -> int:
    obj = cluster.get_migration(name)
    status = obj.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase != "Failed":
        raise CommandError(
            f"refusing to retry databasemigration {name}: it is {phase}, not Failed",
            EXIT_REFUSED,
        )
    token = retry_token(datetime.now(UTC))
    cluster.annotate_migration(name, {RETRY_ANNOTATION: token})
    namespace = obj["metadata"].get("namespace", cluster.namespace)
    out.write(
        f"retry requested for databasemigration {namespace}/{name} "
        f"(was Failed: attempt {status.get('attempts', 0)})\n"
        f"annotated {RETRY_ANNOTATION}={token}\n"
    )
    return 0
