"""Pure helpers for a batch/v1 Job's spec and status, as the local Job controller reads them.

Role: condition bookkeeping (:func:`set_condition`, :func:`condition_true`), the questions
:mod:`.jobcontrol` and :mod:`.kubelet` ask of a Job object (:func:`finished`,
:func:`suspended`, :func:`backoff_limit`), and the reasons/messages the Job controller writes.

What it must not do: talk to the apiserver, keep state between calls, or decide when a Job
succeeds or fails (that is :mod:`.jobcontrol`); it only edits the ``status`` dict it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alembic_operator.emulation.timestamps import now

SUCCESS_REASON = "CompletionsReached"
SUCCESS_MESSAGE = "Reached expected number of succeeded pods"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"


def condition_true(status: Mapping[str, Any], kind: str) -> bool:
    """Whether ``status`` has the condition ``kind`` with status ``"True"``."""
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or []
    )


def finished(job: Mapping[str, Any]) -> bool:
    """Whether the Job has its terminal ``Complete`` or ``Failed`` condition."""
    status = job.get("status") or {}
    return condition_true(status, "Complete") or condition_true(status, "Failed")


def suspended(job: Mapping[str, Any]) -> bool:
    """Whether the Job's ``spec.suspend`` is set."""
    return bool((job.get("spec") or {}).get("suspend"))


def backoff_limit(job: Mapping[str, Any]) -> int:
    """The Job's ``spec.backoffLimit`` (Kubernetes' default: 6)."""
    return int((job.get("spec") or {}).get("backoffLimit", 6))


def set_condition(status: dict[str, Any], kind: str, value: str, reason: str, message: str) -> None:
    """Add or update a Job condition; ``lastTransitionTime`` moves only when the status flips."""
    timestamp = now()
    conditions: list[dict[str, Any]] = status.setdefault("conditions", []) or []
    status["conditions"] = conditions
    for condition in conditions:
        if condition.get("type") == kind:
            if condition.get("status") != value:
                condition["lastTransitionTime"] = timestamp
            condition.update(status=value, reason=reason, message=message, lastProbeTime=timestamp)
            return
    conditions.append(
        {
            "type": kind,
            "status": value,
            "lastProbeTime": timestamp,
            "lastTransitionTime": timestamp,
            "reason": reason,
            "message": message,
        }
    )
