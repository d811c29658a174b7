"""The DatabaseMigration status as typed values, read leniently and written as a patch.

Role: :func:`parse_status` reads the stored status (never raising: a damaged status must not
wedge the operator); :func:`status_to_patch` turns a :class:`MigrationStatus` back into the
camelCase merge-patch body for the status subresource, cut to the CRD's limits.

Must not: do I/O, read the clock (times are values), or import Kubernetes, kopf or databases.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alembic_operator.model.reasons import Reason
from alembic_operator.model.spec import (
    LOG_TAIL_LIMIT,
    MESSAGE_LIMIT,
    REVISION_LIST_LIMIT,
    RawObject,
)
from alembic_operator.redaction import truncate_utf8


class Phase(enum.StrEnum):
    PENDING = "Pending"
    PLANNING = "Planning"
    AWAITING_APPROVAL = "AwaitingApproval"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ConditionType(enum.StrEnum):
    """The kstatus condition types the operator writes."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    # Not a kstatus condition: what the rollout gate holds and why (core/gates.py).
    DEPLOYMENTS_HELD = "DeploymentsHeld"


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


# --- spec ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """A metav1.Condition of one of our types, with a reason from :class:`Reason`."""

    type: ConditionType
    status: ConditionStatus
    reason: Reason
    message: str
    last_transition_time: datetime
    observed_generation: int | None = None


@dataclass(frozen=True)
class PlanStatus:
    hash: str | None = None
    revisions: tuple[str, ...] = ()
    direction: str | None = None
    destructive: bool | None = None
    sql_config_map: str | None = None
    generation: int | None = None
    from_revision: str | None = None
    image: str | None = None
    image_id: str | None = None  # the plan pod's containerStatuses[].imageID
    sql_sha256: str | None = None  # the runner's hash of the plan's offline SQL


@dataclass(frozen=True)
class JobStatus:
    """The Job of the current or last run; the uid tells it apart from a later namesake."""

    name: str
    uid: str | None = None
    attempt: int = 0


@dataclass(frozen=True)
class GateStatus:
    held: bool = False
    deployments: tuple[str, ...] = ()


@dataclass(frozen=True)
class LastSucceeded:
    image: str | None = None
    revision: str | None = None
    generation: int | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class MigrationStatus:
    """Everything the operator writes under ``.status`` (``status.kopf`` belongs to kopf)."""

    observed_generation: int = -1
    phase: Phase | None = None
    conditions: tuple[Condition, ...] = ()
    target_revision: str | None = None
    from_revision: str | None = None
    current_revision: str | None = None
    applied_revisions: tuple[str, ...] = ()
    failed_revision: str | None = None  # the revision a failed run stopped at (its result)
    plan: PlanStatus | None = None
    job: JobStatus | None = None
    attempts: int = 0
    retry_token: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    message: str | None = None
    log_tail: str | None = None
    gate: GateStatus | None = None
    last_succeeded: LastSucceeded | None = None


# --- times --------------------------------------------------------------------------------


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time serialises."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one (UTC)")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """A metav1.Time string as an aware datetime; ``None`` for anything else."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --- parsing the status (lenient: a field of the wrong type counts as absent) ----------------


def _opt(obj: RawObject, key: str, *, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(key)
    if isinstance(value, bool) and kind is not bool:
        return None
    return value if isinstance(value, kind) else None


def _int_or(obj: RawObject, key: str, *, default: int) -> int:
    value = _opt(obj, key, kind=int)
    return default if value is None else int(value)


def _str_tuple(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list | tuple) else ()


def _sub(obj: RawObject, key: str) -> RawObject | None:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else None


def _condition(raw: object) -> Condition | None:
    """A stored condition, or ``None`` when its type or reason is not ours (it gets replaced)."""
    if not isinstance(raw, Mapping):
        return None
    try:
        return Condition(
            type=ConditionType(str(raw.get("type"))),
            status=ConditionStatus(str(raw.get("status"))),
            reason=Reason(str(raw.get("reason"))),
            message=str(raw.get("message") or ""),
            last_transition_time=parse_time(raw.get("lastTransitionTime"))
            or datetime.fromtimestamp(0, UTC),
            observed_generation=_opt(raw, "observedGeneration", kind=int),
        )
    except ValueError:
        return None


def _phase(value: object) -> Phase | None:
    try:
        return Phase(str(value))
    except ValueError:
        return None


def parse_status(status: RawObject) -> MigrationStatus:
    """The typed status. Never raises: status is ours, and a damaged one must not wedge us."""
    plan, job, gate, last = (_sub(status, k) for k in ("plan", "job", "gate", "lastSucceeded"))
    duration = _opt(status, "durationSeconds", kind=(int, float))
    return MigrationStatus(
        observed_generation=_int_or(status, "observedGeneration", default=-1),
        phase=_phase(status.get("phase")),
        conditions=tuple(
            c for c in map(_condition, status.get("conditions") or ()) if c is not None
        ),
        target_revision=_opt(status, "targetRevision", kind=str),
        from_revision=_opt(status, "fromRevision", kind=str),
        current_revision=_opt(status, "currentRevision", kind=str),
        applied_revisions=_str_tuple(status.get("appliedRevisions")),
        failed_revision=_opt(status, "failedRevision", kind=str),
        plan=None
        if plan is None
        else PlanStatus(
            hash=_opt(plan, "hash", kind=str),
            revisions=_str_tuple(plan.get("revisions")),
            direction=_opt(plan, "direction", kind=str),
            destructive=_opt(plan, "destructive", kind=bool),
            sql_config_map=_opt(plan, "sqlConfigMap", kind=str),
            from_revision=_opt(plan, "fromRevision", kind=str),
            image=_opt(plan, "image", kind=str),
            image_id=_opt(plan, "imageID", kind=str),
            sql_sha256=_opt(plan, "sqlSha256", kind=str),
            generation=_opt(plan, "generation", kind=int),
        ),
        job=None
        if job is None or not isinstance(job.get("name"), str)
        else JobStatus(
            name=job["name"],
            uid=_opt(job, "uid", kind=str),
            attempt=_int_or(job, "attempt", default=0),
        ),
        attempts=_int_or(status, "attempts", default=0),
        retry_token=_opt(status, "retryToken", kind=str),
        started_at=parse_time(status.get("startedAt")),
        finished_at=parse_time(status.get("finishedAt")),
        duration_seconds=float(duration) if duration is not None else None,
        message=_opt(status, "message", kind=str),
        log_tail=_opt(status, "logTail", kind=str),
        gate=None
        if gate is None
        else GateStatus(
            held=bool(_opt(gate, "held", kind=bool)),
            deployments=_str_tuple(gate.get("deployments")),
        ),
        last_succeeded=None
        if last is None
        else LastSucceeded(
            image=_opt(last, "image", kind=str),
            revision=_opt(last, "revision", kind=str),
            generation=_opt(last, "generation", kind=int),
            finished_at=parse_time(last.get("finishedAt")),
        ),
    )


# --- the status patch ------------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def condition_to_dict(condition: Condition) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": condition.type.value,
        "status": condition.status.value,
        "reason": condition.reason.value,
        "message": truncate_utf8(condition.message, MESSAGE_LIMIT),
        "lastTransitionTime": format_time(condition.last_transition_time),
    }
    if condition.observed_generation is not None:
        body["observedGeneration"] = condition.observed_generation
    return body


def _nested(value: Any, build: Any) -> dict[str, Any] | None:
    return None if value is None else {k: v for k, v in build(value).items() if v is not None}


def status_to_patch(status: MigrationStatus) -> dict[str, Any]:
    """The camelCase JSON merge-patch body (RFC 7386) for the status subresource.

    Every field the operator owns is present: ``None`` becomes ``null``, which removes the field
    (e.g. the log tail of an earlier failure once a new run starts). ``status.kopf`` is left
    alone. Values are cut to the CRD's limits (log tail 4 KiB keeping its end, message 32 KiB,
    newest 4096 applied revisions) so the patch never fails validation.
    """
    plan = _nested(
        status.plan,
        lambda p: {
            "hash": p.hash,
            "revisions": list(p.revisions[-REVISION_LIST_LIMIT:]),
            "direction": p.direction,
            "destructive": p.destructive,
            "sqlConfigMap": p.sql_config_map,
            "fromRevision": p.from_revision,
            "image": p.image,
            "imageID": p.image_id,
            "sqlSha256": p.sql_sha256,
            "generation": p.generation,
        },
    )
    return {
        "observedGeneration": status.observed_generation,
        "phase": status.phase.value if status.phase is not None else None,
        "conditions": [condition_to_dict(c) for c in status.conditions],
        "targetRevision": status.target_revision,
        "fromRevision": status.from_revision,
        "currentRevision": status.current_revision,
        "appliedRevisions": list(status.applied_revisions[-REVISION_LIST_LIMIT:]),
        "failedRevision": status.failed_revision,
        "plan": plan,
        "job": _nested(status.job, lambda j: {"name": j.name, "uid": j.uid, "attempt": j.attempt}),
        "attempts": status.attempts,
        "retryToken": status.retry_token,
        "startedAt": _time(status.started_at),
        "finishedAt": _time(status.finished_at),
        "durationSeconds": status.duration_seconds,
        "message": None if status.message is None else truncate_utf8(status.message, MESSAGE_LIMIT),
        "logTail": None
        if status.log_tail is None
        else truncate_utf8(status.log_tail, LOG_TAIL_LIMIT),
        "gate": _nested(
            status.gate, lambda g: {"held": g.held, "deployments": list(g.deployments)}
        ),
        "lastSucceeded": _nested(
            status.last_succeeded,
            lambda s: {
                "image": s.image,
                "revision": s.revision,
                "generation": s.generation,
                "finishedAt": _time(s.finished_at),
            },
        ),
    }
