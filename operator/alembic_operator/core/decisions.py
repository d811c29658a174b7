"""``decide``: the operator's behaviour for one DatabaseMigration, as one pure function.

Given the typed migration (spec, status, annotations), what was observed (its Jobs and their
pods, the Secret) and the time, it returns the next status, the actions that get there, and
when to look again. The shell performs the actions in order: Job changes, then the status
patch, then the Events — so an Event never reports a status that was not written, and outcomes
are derived from status transitions only (recorded once, whatever re-runs the reconcile).

Rules (docs/operator.md): one Job per (generation, attempt), named deterministically so a Job
found under the next attempt's name after a crash is adopted, never duplicated; a spec change
while a Job runs waits for it; a permanent failure is retried only on a spec change or a new
value of the ``alembic-operator.dev/retry`` annotation; ``suspend`` stops new Jobs; a missing
Secret (or key) creates no Job and is looked at again with backoff. Must not: do I/O, read the
clock (``now`` is a parameter) or import Kubernetes libraries.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from alembic_operator.core.approvals import (
    awaiting_approval,
    database_moved,
    has_changes,
    plan_outdated,
    record_plan,
)
from alembic_operator.core.invocation import RunMode, requested_image
from alembic_operator.core.launches import (
    RETRY_ANNOTATION,
    RUNNING_RESYNC_SECONDS,
    next_job_name,
    start_job,
    start_message,
)
from alembic_operator.core.outcomes import Outcome, Retrying, read_outcome, waiting_problem
from alembic_operator.core.plans import Approval, approval, requires_plan
from alembic_operator.core.transitions import finished, with_phase
from alembic_operator.model.actions import (
    Decision,
    DeleteJob,
    PostEvent,
)
from alembic_operator.model.migrations import Migration, MigrationRef
from alembic_operator.model.observations import (
    Observation,
    ObservationPlan,
    ObservedJob,
)
from alembic_operator.model.reasons import Reason
from alembic_operator.model.status import (
    LastSucceeded,
    MigrationStatus,
    Phase,
)

_IN_FLIGHT = (Phase.RUNNING, Phase.PLANNING)


def is_retry_requested(migration: Migration) -> bool:
    token = migration.annotations.get(RETRY_ANNOTATION)
    # Pending counts too: a retry that first waited for its Secret must still be recorded.
    return (
        token is not None
        and token != migration.status.retry_token
        and migration.status.phase in (Phase.FAILED, Phase.PENDING)
    )


def needs_new_job(migration: Migration) -> bool:
    """Whether the migration wants a Job it does not have (a running one is finished first)."""
    status = migration.status
    if status.job is None:
        return True
    if status.phase in _IN_FLIGHT:
        return False
    if status.phase is Phase.PENDING:  # waiting for its Secret or for suspend to end
        return True
    if status.observed_generation < migration.ref.generation:
        return True
    return is_retry_requested(migration)


def next_mode(migration: Migration) -> RunMode | None:
    """The kind of Job the migration wants next: a plan first when approval or dryRun asks."""
    if is_awaiting_approval(migration):
        return RunMode.APPLY if approval(migration) is Approval.APPROVED else None
    if needs_new_job(migration):
        return RunMode.PLAN if requires_plan(migration) else RunMode.APPLY
    return None


def is_awaiting_approval(migration: Migration) -> bool:
    status = migration.status
    return (
        status.phase is Phase.AWAITING_APPROVAL
        and status.observed_generation == migration.ref.generation
    )


def observation_plan(migration: Migration) -> ObservationPlan:
    """The Jobs to look up (the tracked one, and the next attempt's name) and the Secret."""
    names = [migration.status.job.name] if migration.status.job else []
    mode = None if migration.spec.suspend else next_mode(migration)
    if mode is not None:
        names.append(next_job_name(migration, mode))
    return ObservationPlan(job_names=tuple(dict.fromkeys(names)), check_secret=mode is not None)


def decide(
    migration: Migration, observed: Observation, *, now: datetime, runner_image: str
) -> Decision:
    status = migration.status
    if status.job is not None and status.phase in _IN_FLIGHT:
        return _track(migration, observed.job(status.job.name), now=now)
    if is_awaiting_approval(migration):
        verdict = approval(migration)
        if verdict is not Approval.APPROVED:
            return awaiting_approval(migration, verdict, now=now)
        return start_job(migration, observed, now=now, runner_image=runner_image)
    mode = next_mode(migration)
    if mode is not None:
        return start_job(migration, observed, now=now, runner_image=runner_image, mode=mode)
    return _settled(migration, observed, now=now)


def reject_invalid(
    ref: MigrationRef, status: MigrationStatus, *, message: str, now: datetime
) -> Decision:
    """A spec the operator cannot act on (what the CRD could not express): Failed, once."""
    new = with_phase(
        status,
        Phase.FAILED,
        Reason.INVALID_CONFIGURATION,
        message,
        generation=ref.generation,
        now=now,
    )
    new = replace(new, observed_generation=ref.generation, message=message)
    if new == status:
        return Decision(status)
    return Decision(new, (PostEvent(Reason.INVALID_SPEC, message, warning=True),))


# --- a Job in flight -------------------------------------------------------------------------


def _track(migration: Migration, job: ObservedJob | None, *, now: datetime) -> Decision:
    status = migration.status
    assert status.job is not None
    if job is None or job.deleting:
        return _job_deleted(migration, status.job.name, now=now)
    outcome = read_outcome(job, runner=migration.spec.runner.type)
    if isinstance(outcome, Outcome) and outcome.succeeded and job.mode == RunMode.PLAN.value:
        if has_changes(outcome):
            return record_plan(migration, job, outcome, now=now)
        if outcome.result is None or outcome.result.plan is None:
            outcome = Outcome(False, Reason.MIGRATION_FAILED, "the plan Job reported no plan")
        else:  # nothing to apply: nothing to approve
            outcome = replace(outcome, reason=Reason.UP_TO_DATE)
    if (
        isinstance(outcome, Outcome)
        and outcome.reason is Reason.PLAN_OUTDATED
        and database_moved(migration, outcome)
    ):
        return plan_outdated(migration, outcome, now=now)
    if isinstance(outcome, Outcome):
        return _outcome(migration, job, outcome, now=now)
    return _running(migration, job, outcome, now=now)


def _job_deleted(migration: Migration, job_name: str, *, now: datetime) -> Decision:
    """The Job went away before it finished: failed, not re-run on its own."""
    status = migration.status
    message = (
        f"the Job {job_name} was deleted before it finished; the migration is not "
        f"re-run: change the spec or set the {RETRY_ANNOTATION} annotation to run it again"
    )
    new = finished(
        status,
        Phase.FAILED,
        Reason.JOB_DELETED,
        message,
        now=now,
        generation=status.observed_generation,
    )
    return Decision(
        new,
        (PostEvent(Reason.JOB_DELETED, message, warning=True),),
        requeue_after=_afterfinished(migration, status.observed_generation),
    )


def _running(
    migration: Migration, job: ObservedJob, outcome: Retrying | None, *, now: datetime
) -> Decision:
    """The Job still runs: its message says which attempt, a retry, or why its pod waits."""
    status = migration.status
    assert status.job is not None
    if outcome is not None:
        limit = migration.spec.backoff_limit
        failed = (
            f"pod {outcome.failed_pods} of Job {job.name} failed ({outcome.reason.value}): "
            f"{outcome.message}"
        )
        # The Job controller marks the Job Failed a moment after its last pod ends: no retry
        # is announced for that pod (the limit is the spec's, which built this generation's Job).
        if outcome.failed_pods > limit and job.generation == migration.ref.generation:
            message = f"{failed}; backoffLimit {limit} reached: the Job is failing"
            event = None
        else:
            message = f"{failed}; the Job retries (backoffLimit {limit})"
            event = PostEvent(Reason.MIGRATION_RETRYING, message, warning=True)
    else:
        # No problem: the start message stands, so a healthy run costs no status patch here.
        message = waiting_problem(job) or start_message(
            job.name,
            attempt=status.job.attempt,
            revision=status.target_revision,
            mode=RunMode.PLAN if job.mode == RunMode.PLAN.value else RunMode.APPLY,
        )
        event = None
    if message == status.message:
        return Decision(status, requeue_after=RUNNING_RESYNC_SECONDS)
    new = with_phase(
        status,
        status.phase or Phase.RUNNING,
        Reason.JOB_RUNNING,
        message,
        generation=status.observed_generation,
        now=now,
    )
    return Decision(
        replace(new, message=message),
        (event,) if event else (),
        requeue_after=RUNNING_RESYNC_SECONDS,
    )


def _outcome(
    migration: Migration, job: ObservedJob, outcome: Outcome, *, now: datetime
) -> Decision:
    status = migration.status
    generation = job.generation if job.generation is not None else status.observed_generation
    ended = (
        (outcome.pod.terminated.finished_at if outcome.pod and outcome.pod.terminated else None)
        or job.finished_at
        or now
    )
    result = outcome.result
    phase = Phase.SUCCEEDED if outcome.succeeded else Phase.FAILED
    new = finished(status, phase, outcome.reason, outcome.message, now=ended, generation=generation)
    if result is not None:
        new = replace(
            new,
            from_revision=",".join(result.from_revisions) or None,
            current_revision=",".join(result.to_revisions) or None,
            applied_revisions=result.applied_revisions,
            failed_revision=None if outcome.succeeded else result.failed_revision,
            duration_seconds=result.duration_seconds,
        )
    if outcome.succeeded:
        new = replace(
            new,
            log_tail=None,
            last_succeeded=LastSucceeded(
                # The tag the spec named, also when the Job ran the plan's pinned digest.
                image=requested_image(job.image, status.plan),
                revision=new.current_revision,
                generation=generation,
                finished_at=ended,
            ),
        )
        event = PostEvent(Reason.MIGRATION_SUCCEEDED, _success_message(new, outcome))
    else:
        new = replace(new, log_tail=outcome.log_tail)
        event = PostEvent(
            Reason.MIGRATION_FAILED,
            f"{outcome.reason.value}: {outcome.message}",
            warning=True,
        )
    requeue = _afterfinished(migration, generation)
    ttl = migration.spec.ttl_seconds_after_finished
    if outcome.succeeded and requeue is None and ttl is not None:
        requeue = float(ttl)  # wake up to delete the succeeded Job
    return Decision(new, (event,), requeue_after=requeue)


def _success_message(status: MigrationStatus, outcome: Outcome) -> str:
    applied = len(status.applied_revisions)
    took = f" in {status.duration_seconds:.2f}s" if status.duration_seconds is not None else ""
    if outcome.reason is Reason.UP_TO_DATE:
        return f"already at {status.current_revision or 'base'}; nothing to apply{took}"
    return (
        f"{applied} revision(s) applied: {status.from_revision or 'base'} -> "
        f"{status.current_revision or 'base'}{took}"
    )


def _afterfinished(migration: Migration, generation: int) -> float | None:
    """Look again at once when the spec changed while the Job ran (the next Job is due)."""
    return 0.0 if generation < migration.ref.generation else None


# --- nothing to run ----------------------------------------------------------------------------


def _settled(migration: Migration, observed: Observation, *, now: datetime) -> Decision:
    """Finished for this generation: only the succeeded Job's TTL can still call for action."""
    status, ttl = migration.status, migration.spec.ttl_seconds_after_finished
    job = observed.job(status.job.name) if status.job else None
    if (
        status.phase is not Phase.SUCCEEDED
        or job is None
        or job.deleting
        or ttl is None
        or status.finished_at is None
    ):
        return Decision(status)
    expires = status.finished_at + timedelta(seconds=ttl)
    if now < expires:
        return Decision(status, requeue_after=(expires - now).total_seconds())
    message = f"deleted the succeeded Job {job.name} (ttlSecondsAfterFinished {ttl})"
    return Decision(status, (DeleteJob(job.name), PostEvent(Reason.JOB_CLEANED_UP, message)))
