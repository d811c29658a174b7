"""Plans and approval in the decision: record a plan, wait for approval, replan when outdated.

Called by :func:`alembic_operator.core.decisions.decide` (which starts the Jobs); pure. A plan
whose pod's log (its SQL) cannot be read is not recorded: the migration stays ``Planning`` with
the reason ``LogsUnreadable`` and looks again with backoff, then fails once
:data:`LOG_READ_DEADLINE_SECONDS` have passed since the plan pod ended.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from alembic_operator.core.conditions import find_condition
from alembic_operator.core.launches import RETRY_ANNOTATION
from alembic_operator.core.outcomes import Outcome
from alembic_operator.core.plans import APPROVE_ANNOTATION, Approval, render_plan
from alembic_operator.core.transitions import finished, with_phase
from alembic_operator.model.actions import (
    Action,
    CreateConfigMap,
    Decision,
    PostEvent,
)
from alembic_operator.model.migrations import Migration
from alembic_operator.model.observations import ObservedJob
from alembic_operator.model.reasons import Reason
from alembic_operator.model.status import ConditionType, Phase, PlanStatus

# How long a finished plan pod's unreadable log is retried (its node may be back by then), and
# the bounds of the backoff in between: a quarter of the time waited so far, 1 s to 30 s.
LOG_READ_DEADLINE_SECONDS = 300.0
LOG_READ_RETRY_SECONDS = (1.0, 30.0)


def has_changes(outcome: Outcome) -> bool:
    """Whether a successful plan run found something to approve (else it simply succeeded)."""
    result = outcome.result
    return result is not None and result.plan is not None and bool(result.plan.revisions)


def record_plan(
    migration: Migration, job: ObservedJob, outcome: Outcome, *, now: datetime
) -> Decision:
    """A plan Job finished: store the plan, then wait for approval (or stop: dryRun)."""
    if outcome.pod is not None and outcome.pod.output_error is not None:
        return plan_unreadable(migration, job, outcome, now=now)
    result, ref, spec = outcome.result, migration.ref, migration.spec
    assert result is not None and result.plan is not None  # see has_changes()
    rendered = render_plan(
        migration, result, output=(outcome.pod.output if outcome.pod else "") or ""
    )
    summary = result.plan
    plan = PlanStatus(
        hash=rendered.hash,
        revisions=summary.revisions,
        direction=summary.direction,
        destructive=summary.destructive,
        sql_config_map=str(rendered.config_map["metadata"]["name"]),
        generation=ref.generation,
        from_revision=",".join(result.from_revisions),
        image=spec.image,
        image_id=outcome.pod.image_id if outcome.pod else None,
        sql_sha256=summary.sql_sha256,
    )
    shape = (
        f"plan {rendered.hash}: {summary.direction} {', '.join(result.from_revisions) or 'base'}"
        f" -> {spec.revision} ({len(summary.revisions)} revision(s)"
        + (", DESTRUCTIVE" if summary.destructive else "")
        + ")"
    )
    if spec.dry_run:
        message = f"dry run: {shape}; nothing was applied (SQL in ConfigMap {plan.sql_config_map})"
        phase, reason, event = Phase.SUCCEEDED, Reason.PLANNED, Reason.DRY_RUN_PLANNED
    else:
        message = (
            f"{shape} awaits approval: kubectl annotate dbm/{ref.name} "
            f"{APPROVE_ANNOTATION}={rendered.hash} (or: alembic-operator approve {ref.name})"
        )
        phase, reason, event = (
            Phase.AWAITING_APPROVAL,
            Reason.APPROVAL_PENDING,
            Reason.APPROVAL_PENDING,
        )
    new = finished(migration.status, phase, reason, message, now=now, generation=ref.generation)
    new = replace(
        new,
        plan=plan,
        from_revision=plan.from_revision or None,
        current_revision=plan.from_revision or None,
        applied_revisions=(),
    )
    actions: tuple[Action, ...] = (CreateConfigMap(rendered.config_map), PostEvent(event, message))
    return Decision(new, actions)


def plan_unreadable(
    migration: Migration, job: ObservedJob, outcome: Outcome, *, now: datetime
) -> Decision:
    """The plan pod ended but its log cannot be read: say so, retry with backoff, then fail.

    The Warning Event is posted once, when the status first says so; the message carries the
    API's answer, so a status patch happens only when that answer changes.
    """
    status, pod = migration.status, outcome.pod
    assert pod is not None and pod.output_error is not None  # see record_plan()
    ended = (pod.terminated.finished_at if pod.terminated else None) or job.finished_at
    waited = (now - (ended or status.started_at or now)).total_seconds()
    what = (
        f"the plan Job {job.name} finished, but the log of its pod {pod.name} "
        f"(the plan's SQL) cannot be read: {pod.output_error}"
    )
    if waited >= LOG_READ_DEADLINE_SECONDS:
        message = (
            f"{what}; gave up after {LOG_READ_DEADLINE_SECONDS:.0f}s: set the {RETRY_ANNOTATION} "
            "annotation to plan again"
        )
        generation = job.generation if job.generation is not None else status.observed_generation
        new = finished(
            status, Phase.FAILED, Reason.LOGS_UNREADABLE, message, now=now, generation=generation
        )
        failed = PostEvent(
            Reason.MIGRATION_FAILED, f"{Reason.LOGS_UNREADABLE.value}: {message}", warning=True
        )
        return Decision(new, (failed,))
    message = f"{what}; retrying for up to {LOG_READ_DEADLINE_SECONDS:.0f}s after the pod ended"
    low, high = LOG_READ_RETRY_SECONDS
    retry = min(max(waited / 4, low), high)
    if message == status.message:
        return Decision(status, requeue_after=retry)
    new = with_phase(
        status,
        Phase.PLANNING,
        Reason.LOGS_UNREADABLE,
        message,
        generation=status.observed_generation,
        now=now,
    )
    ready = find_condition(status.conditions, ConditionType.READY)
    first = ready is None or ready.reason is not Reason.LOGS_UNREADABLE
    event = PostEvent(Reason.LOGS_UNREADABLE, message, warning=True)
    return Decision(replace(new, message=message), (event,) if first else (), requeue_after=retry)


def awaiting_approval(migration: Migration, verdict: Approval, *, now: datetime) -> Decision:
    """AwaitingApproval, not approved: a rejection, a mismatch to report, or nothing."""
    status, plan = migration.status, migration.status.plan
    if verdict is Approval.REJECTED:
        message = f"plan {plan.hash if plan else '?'} was rejected; nothing was applied"
        new = finished(
            status,
            Phase.FAILED,
            Reason.APPROVAL_REJECTED,
            message,
            now=now,
            generation=migration.ref.generation,
        )
        return Decision(new, (PostEvent(Reason.MIGRATION_FAILED, message, warning=True),))
    if verdict is Approval.MISMATCH:
        message = (
            f"the approve/reject annotation names another plan; the current plan is "
            f"{plan.hash if plan else '?'} (it was rendered again: check it, then approve it)"
        )
        if status.message == message:
            return Decision(status)
        new = replace(status, message=message)
        return Decision(new, (PostEvent(Reason.APPROVAL_MISMATCH, message, warning=True),))
    return Decision(status)


def database_moved(migration: Migration, outcome: Outcome) -> bool:
    """Whether a PlanOutdated run found the database elsewhere than the approved plan started.

    Then a new plan is rendered (:func:`plan_outdated`). Otherwise the database is where the
    plan started and the *image* differs from the approved plan (other revisions or SQL under
    the same reference): the migration fails (PlanOutdated) for a person to look at.
    """
    plan, result = migration.status.plan, outcome.result
    if plan is None or result is None:
        return True
    start = {r for r in (plan.from_revision or "").split(",") if r}
    return set(result.from_revisions) != start


def plan_outdated(migration: Migration, outcome: Outcome, *, now: datetime) -> Decision:
    """The database moved after the plan was approved: render a new plan, nothing applied."""
    message = f"{outcome.message}; rendering a new plan to approve"
    new = with_phase(
        migration.status,
        Phase.PENDING,
        Reason.PLAN_OUTDATED,
        message,
        generation=migration.ref.generation,
        now=now,
    )
    new = replace(new, plan=None, message=message)
    event = PostEvent(Reason.PLAN_OUTDATED, message, warning=True)
    return Decision(new, (event,), requeue_after=0.0)
