"""The runner's result: one JSON object on stdout and in the termination-message file.

The operator reads it back from the pod's termination message, which Kubernetes caps at 4096
bytes, so :func:`encode_result` always produces valid JSON under the limit: the message is cut
first (keeping its end), then long revision lists. Embedded in the runner's zipapp: standard
library and our other embedded leaves only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from alembic_operator.model.reasons import SUCCESS_REASONS, ExitCode, Reason, exit_code_for
from alembic_operator.redaction import truncate_middle_utf8

TERMINATION_MESSAGE_LIMIT = 4096
# Leaves room for Kubernetes' own framing and for multi-byte characters cut at the edge.
RESULT_BYTE_BUDGET = 4000


@dataclass(frozen=True)
class PlanSummary:
    """What a plan-mode run found: the revisions it would apply or undo, and its offline SQL."""

    direction: str
    revisions: tuple[str, ...]
    destructive: bool
    sql_sha256: str
    sql_bytes: int


@dataclass(frozen=True)
class RunnerResult:
    """The outcome of one runner invocation (apply or plan)."""

    reason: Reason
    mode: str = "apply"
    target_revision: str = ""
    from_revisions: tuple[str, ...] = ()
    to_revisions: tuple[str, ...] = ()
    applied_revisions: tuple[str, ...] = ()
    direction: str = "none"
    duration_seconds: float = 0.0
    message: str = ""
    failed_revision: str | None = None
    plan: PlanSummary | None = None
    truncated: dict[str, int] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.reason in SUCCESS_REASONS

    @property
    def exit_code(self) -> ExitCode:
        return exit_code_for(self.reason)

    def to_json_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "outcome": "Succeeded" if self.succeeded else "Failed",
            "reason": self.reason.value,
            "exitCode": int(self.exit_code),
            "mode": self.mode,
            "targetRevision": self.target_revision,
            "fromRevision": _join(self.from_revisions),
            "toRevision": _join(self.to_revisions),
            "appliedRevisions": list(self.applied_revisions),
            "direction": self.direction,
            "durationSeconds": round(self.duration_seconds, 3),
            "message": self.message,
        }
        if self.failed_revision is not None:
            body["failedRevision"] = self.failed_revision
        if self.plan is not None:
            body["plan"] = {
                "direction": self.plan.direction,
                "revisions": list(self.plan.revisions),
                "destructive": self.plan.destructive,
                "sqlSha256": self.plan.sql_sha256,
                "sqlBytes": self.plan.sql_bytes,
            }
        if self.truncated:
            body["truncated"] = dict(self.truncated)
        return body


def _join(revisions: tuple[str, ...]) -> str | None:
    return ",".join(revisions) if revisions else None


def _split(value: object) -> tuple[str, ...]:
    return tuple(v for v in str(value).split(",") if v) if value else ()


def encode_result(result: RunnerResult, *, limit: int = RESULT_BYTE_BUDGET) -> str:
    """Compact JSON of ``result`` in at most ``limit`` UTF-8 bytes, always parseable."""
    text = _dump(result)
    if len(text.encode("utf-8")) <= limit:
        return text
    overflow = len(text.encode("utf-8")) - limit
    message_budget = max(len(result.message.encode("utf-8")) - overflow - 16, 200)
    result = replace(result, message=truncate_middle_utf8(result.message, message_budget))
    for keep in (20, 5, 1, 0):
        text = _dump(result)
        if len(text.encode("utf-8")) <= limit:
            return text
        result = _shorten_lists(result, keep=keep)
    text = _dump(replace(result, message=truncate_middle_utf8(result.message, 100)))
    if len(text.encode("utf-8")) > limit:  # pragma: no cover - needs absurd revision ids
        raise ValueError("result does not fit the termination message")
    return text


def _shorten_lists(result: RunnerResult, *, keep: int) -> RunnerResult:
    truncated = dict(result.truncated)
    applied = result.applied_revisions
    if len(applied) > keep:
        truncated["appliedRevisions"] = truncated.get("appliedRevisions", 0) + len(applied) - keep
        applied = applied[-keep:] if keep else ()
    plan = result.plan
    if plan is not None and len(plan.revisions) > keep:
        truncated["planRevisions"] = truncated.get("planRevisions", 0) + len(plan.revisions) - keep
        plan = replace(plan, revisions=plan.revisions[-keep:] if keep else ())
    return replace(result, applied_revisions=applied, plan=plan, truncated=truncated)


def _dump(result: RunnerResult) -> str:
    return json.dumps(result.to_json_dict(), separators=(",", ":"), ensure_ascii=False)


def decode_result(text: str) -> RunnerResult:
    """Parse a runner result (the termination message); raises ValueError when it is not one."""
    try:
        body = json.loads(text)
        reason = Reason(body["reason"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a runner result: {exc}") from None
    plan_body = body.get("plan")
    plan = None
    if isinstance(plan_body, dict):
        plan = PlanSummary(
            direction=str(plan_body.get("direction", "none")),
            revisions=tuple(str(r) for r in plan_body.get("revisions", ())),
            destructive=bool(plan_body.get("destructive", False)),
            sql_sha256=str(plan_body.get("sqlSha256", "")),
            sql_bytes=int(plan_body.get("sqlBytes", 0)),
        )
    return RunnerResult(
        reason=reason,
        mode=str(body.get("mode", "apply")),
        target_revision=str(body.get("targetRevision", "")),
        from_revisions=_split(body.get("fromRevision")),
        to_revisions=_split(body.get("toRevision")),
        applied_revisions=tuple(str(r) for r in body.get("appliedRevisions", ())),
        direction=str(body.get("direction", "none")),
        duration_seconds=float(body.get("durationSeconds", 0.0)),
        message=str(body.get("message", "")),
        failed_revision=body.get("failedRevision"),
        plan=plan,
        truncated={str(k): int(v) for k, v in dict(body.get("truncated", {})).items()},
    )
