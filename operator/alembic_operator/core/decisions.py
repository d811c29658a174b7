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

from alembic_operator.core.conditions import conditions_for_phase, find_condition
from alembic_operator.core.jobs import RunMode, build_job, job_name
from alembic_operator.core.outcomes import Outcome, Retrying, read_outcome, waiting_problem
from alembic_operator.core.plans import (
    APPROVE_ANNOTATION,
    Approval,
    approval,
    render_plan,
    requires_plan,
)
from alembic_operator.model.actions import (
    Action,
    CreateConfigMap,
    CreateJob,
    Decision,
    DeleteJob,
    EventReason,
    PostEvent,
)
from alembic_operator.model.migrations import Migration, MigrationRef
from alembic_operator.model.observations import (
    Observation,
    ObservationPlan,
    ObservedJob,
    SecretState,
)
from alembic_operator.model.reasons import PERMANENT_EXIT_CODES, Reason
from alembic_operator.model.spec import GROUP, RunnerType
from alembic_operator.model.status import (
    ConditionType,
    JobStatus,
    LastSucceeded,
    MigrationStatus,
    Phase,
    PlanStatus,
)

RETRY_ANNOTATION = f"{GROUP}/retry"
_IN_FLIGHT = (Phase.RUNNING, Phase.PLANNING)
_PENDING_MARKERS = (ConditionType.READY, ConditionType.RECONCILING)
SECRET_BACKOFF_MIN_SECONDS = 1.0
SECRET_BACKOFF_MAX_SECONDS = 60.0
# Watch events drive progress; this only bounds the damage of a missed one.
RUNNING_RESYNC_SECONDS = 60.0


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


def next_job_name(migration: Migration, mode: RunMode = RunMode.APPLY) -> str:
    ref = migration.ref
    return job_name(
        ref.name,
        uid=ref.uid,
        generation=ref.generation,
        attempt=migration.status.attempts + 1,
        mode=mode,
    )


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
        return _awaiting(migration, observed, now=now, runner_image=runner_image)
    mode = next_mode(migration)
    if mode is not None:
        return _start(migration, observed, now=now, runner_image=runner_image, mode=mode)
    return _settled(migration, observed, now=now)


def reject_invalid(
    ref: MigrationRef, status: MigrationStatus, *, message: str, now: datetime
) -> Decision:
    """A spec the operator cannot act on (what the CRD could not express): Failed, once."""
    new = _phase(
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
    return Decision(new, (PostEvent(EventReason.INVALID_SPEC, message, warning=True),))


# --- a Job in flight -------------------------------------------------------------------------


def _track(migration: Migration, job: ObservedJob | None, *, now: datetime) -> Decision:
    status = migration.status
    assert status.job is not None
    if job is None or job.deleting:
        message = (
            f"the Job {status.job.name} was deleted before it finished; the migration is not "
            f"re-run: change the spec or set the {RETRY_ANNOTATION} annotation to run it again"
        )
        new = _finish(
            status,
            Phase.FAILED,
            Reason.JOB_DELETED,
            message,
            now=now,
            generation=status.observed_generation,
        )
        return Decision(
            new,
            (PostEvent(EventReason.JOB_DELETED, message, warning=True),),
            requeue_after=_after_finish(migration, status.observed_generation),
        )
    permanent = (
        frozenset(PERMANENT_EXIT_CODES)
        if migration.spec.runner.type is RunnerType.EMBEDDED
        else frozenset()  # a command's exit codes mean nothing to us: the Job retries them
    )
    outcome = read_outcome(job, permanent_codes=permanent)
    if isinstance(outcome, Outcome) and outcome.succeeded and job.mode == RunMode.PLAN.value:
        return _planned(migration, job, outcome, now=now)
    if isinstance(outcome, Outcome) and outcome.reason is Reason.PLAN_OUTDATED:
        return _plan_outdated(migration, outcome, now=now)
    if isinstance(outcome, Outcome):
        return _outcome(migration, job, outcome, now=now)
    if isinstance(outcome, Retrying):
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
            event = PostEvent(EventReason.MIGRATION_RETRYING, message, warning=True)
    else:
        message = waiting_problem(job) or f"Job {job.name} is running"
        event = None
    if message == status.message:
        return Decision(status, requeue_after=RUNNING_RESYNC_SECONDS)
    new = _phase(
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
    new = _finish(status, phase, outcome.reason, outcome.message, now=ended, generation=generation)
    if result is not None:
        new = replace(
            new,
            from_revision=",".join(result.from_revisions) or None,
            current_revision=",".join(result.to_revisions) or None,
            applied_revisions=result.applied_revisions,
            duration_seconds=result.duration_seconds,
        )
    if outcome.succeeded:
        new = replace(
            new,
            log_tail=None,
            last_succeeded=LastSucceeded(
                image=job.image,
                revision=new.current_revision,
                generation=generation,
                finished_at=ended,
            ),
        )
        event = PostEvent(EventReason.MIGRATION_SUCCEEDED, _success_message(new, outcome))
    else:
        new = replace(new, log_tail=outcome.log_tail)
        event = PostEvent(
            EventReason.MIGRATION_FAILED,
            f"{outcome.reason.value}: {outcome.message}",
            warning=True,
        )
    requeue = _after_finish(migration, generation)
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


def _after_finish(migration: Migration, generation: int) -> float | None:
    """Look again at once when the spec changed while the Job ran (the next Job is due)."""
    return 0.0 if generation < migration.ref.generation else None


def _finish(
    status: MigrationStatus,
    phase: Phase,
    reason: Reason,
    message: str,
    *,
    now: datetime,
    generation: int,
) -> MigrationStatus:
    new = _phase(status, phase, reason, message, generation=generation, now=now)
    duration = (now - status.started_at).total_seconds() if status.started_at else None
    return replace(
        new,
        message=message,
        finished_at=now,
        duration_seconds=duration,
        observed_generation=generation,
    )


# --- starting a Job --------------------------------------------------------------------------


def _start(
    migration: Migration,
    observed: Observation,
    *,
    now: datetime,
    runner_image: str,
    mode: RunMode = RunMode.APPLY,
) -> Decision:
    ref, spec, status = migration.ref, migration.spec, migration.status
    if spec.suspend:
        message = "spec.suspend is true: no new migration Job is started"
        if status.phase is Phase.PENDING and status.message == message:
            return Decision(status)
        new = replace(
            _phase(
                status, Phase.PENDING, Reason.SUSPENDED, message, generation=ref.generation, now=now
            ),
            message=message,
            observed_generation=ref.generation,
        )
        return Decision(new, (PostEvent(EventReason.SUSPENDED, message),))
    attempt = status.attempts + 1
    name = next_job_name(migration, mode)
    # Every start consumes the annotation's current value: only a value set after this start
    # (e.g. not one already in the manifest at creation) asks for a retry after a failure.
    token = migration.annotations.get(RETRY_ANNOTATION)
    existing = observed.job(name)
    if existing is not None:
        return _adopt(migration, existing, attempt=attempt, token=token, now=now, mode=mode)
    if observed.secret is not SecretState.PRESENT:
        return _secret_missing(migration, observed.secret, now=now)
    planning = mode is RunMode.PLAN
    what = "plan Job" if planning else "Job"
    message = f"{what} {name} started (attempt {attempt}) to revision {spec.revision}"
    new = _running(
        migration, JobStatus(name=name, attempt=attempt), message, token, now=now, mode=mode
    )
    plan = status.plan if not planning and status.plan else None
    expect = _plan_start(plan) if plan is not None else None
    job = build_job(
        migration, runner_image=runner_image, attempt=attempt, mode=mode, expect_revisions=expect
    )
    event = EventReason.PLAN_STARTED if planning else EventReason.MIGRATION_STARTED
    actions: tuple[Action, ...] = (CreateJob(job), PostEvent(event, message))
    return Decision(new, actions, requeue_after=RUNNING_RESYNC_SECONDS)


def _plan_start(plan: PlanStatus) -> tuple[str, ...]:
    return tuple(r for r in (plan.from_revision or "").split(",") if r)


def _adopt(
    migration: Migration,
    job: ObservedJob,
    *,
    attempt: int,
    token: str | None,
    now: datetime,
    mode: RunMode = RunMode.APPLY,
) -> Decision:
    if job.owner_uid != migration.ref.uid:
        message = (
            f"a Job named {job.name} exists and is not owned by this DatabaseMigration "
            f"(owner uid {job.owner_uid or 'none'}); delete it, then set the {RETRY_ANNOTATION} "
            "annotation to run the migration"
        )
        if migration.status.phase is Phase.FAILED and migration.status.message == message:
            return Decision(migration.status)  # reported already
        new = _finish(
            migration.status,
            Phase.FAILED,
            Reason.JOB_CONFLICT,
            message,
            now=now,
            generation=migration.ref.generation,
        )
        return Decision(new, (PostEvent(EventReason.MIGRATION_FAILED, message, warning=True),))
    message = f"adopted the existing Job {job.name} (attempt {attempt})"
    new = _running(
        migration,
        JobStatus(name=job.name, uid=job.uid, attempt=attempt),
        message,
        token,
        now=now,
        mode=mode,
    )
    # Look again at once: the adopted Job may already have finished.
    return Decision(new, (PostEvent(EventReason.JOB_ADOPTED, message),), requeue_after=0.0)


def _running(
    migration: Migration,
    job: JobStatus,
    message: str,
    token: str | None,
    *,
    now: datetime,
    mode: RunMode = RunMode.APPLY,
) -> MigrationStatus:
    ref, status = migration.ref, migration.status
    phase = Phase.PLANNING if mode is RunMode.PLAN else Phase.RUNNING
    new = _phase(status, phase, Reason.JOB_RUNNING, message, generation=ref.generation, now=now)
    return replace(
        new,
        observed_generation=ref.generation,
        target_revision=migration.spec.revision,
        job=job,
        attempts=job.attempt,
        retry_token=token if token is not None else status.retry_token,
        started_at=now,
        finished_at=None,
        duration_seconds=None,
        message=message,
        log_tail=None,
        from_revision=status.current_revision,
        applied_revisions=(),
        # A new plan replaces the old one; an approved plan stays while it is applied.
        plan=None if mode is RunMode.PLAN else status.plan,
    )


def _secret_missing(migration: Migration, state: SecretState | None, *, now: datetime) -> Decision:
    ref, spec, status = migration.ref, migration.spec, migration.status
    secret = spec.database.url_secret_ref
    what = (
        f"key {secret.key!r} not found in Secret {secret.name!r}"
        if state is SecretState.MISSING_KEY
        else f"Secret {secret.name!r} not found"
    )
    message = f"{what}: no Job is started until it exists (retrying with backoff)"
    # Pending began when Reconciling (or, for a fresh migration, Ready) last flipped.
    times = [
        c.last_transition_time
        for c in (find_condition(status.conditions, kind) for kind in _PENDING_MARKERS)
        if c is not None and c.reason is Reason.SECRET_NOT_FOUND
    ]
    waiting_since = max(times) if times else now
    elapsed = (now - waiting_since).total_seconds()
    delay = min(max(elapsed / 2, SECRET_BACKOFF_MIN_SECONDS), SECRET_BACKOFF_MAX_SECONDS)
    if status.phase is Phase.PENDING and status.message == message:
        return Decision(status, requeue_after=delay)
    new = replace(
        _phase(
            status,
            Phase.PENDING,
            Reason.SECRET_NOT_FOUND,
            message,
            generation=ref.generation,
            now=now,
        ),
        message=message,
        observed_generation=ref.generation,
        target_revision=spec.revision,
    )
    return Decision(
        new, (PostEvent(EventReason.SECRET_NOT_FOUND, message, warning=True),), requeue_after=delay
    )


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
    return Decision(status, (DeleteJob(job.name), PostEvent(EventReason.JOB_CLEANED_UP, message)))


def _phase(
    status: MigrationStatus,
    phase: Phase,
    reason: Reason,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> MigrationStatus:
    conditions = conditions_for_phase(
        status.conditions, phase, reason=reason, message=message, generation=generation, now=now
    )
    return replace(status, phase=phase, conditions=conditions)


# --- plans and approvals ----------------------------------------------------------------------


def _planned(
    migration: Migration, job: ObservedJob, outcome: Outcome, *, now: datetime
) -> Decision:
    """A plan Job finished: store the plan, then wait for approval (or stop: dryRun)."""
    result, ref, spec = outcome.result, migration.ref, migration.spec
    if result is None or result.plan is None:
        failed = Outcome(False, Reason.MIGRATION_FAILED, "the plan Job reported no plan")
        return _outcome(migration, job, failed, now=now)
    if not result.plan.revisions:  # nothing to apply: nothing to approve
        done = Outcome(True, Reason.UP_TO_DATE, result.message, result=result, pod=outcome.pod)
        return _outcome(migration, job, done, now=now)
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
    )
    shape = (
        f"plan {rendered.hash}: {summary.direction} {', '.join(result.from_revisions) or 'base'}"
        f" -> {spec.revision} ({len(summary.revisions)} revision(s)"
        + (", DESTRUCTIVE" if summary.destructive else "")
        + ")"
    )
    if spec.dry_run:
        message = f"dry run: {shape}; nothing was applied (SQL in ConfigMap {plan.sql_config_map})"
        phase, reason, event = Phase.SUCCEEDED, Reason.PLANNED, EventReason.DRY_RUN_PLANNED
    else:
        message = (
            f"{shape} awaits approval: kubectl annotate dbm/{ref.name} "
            f"{APPROVE_ANNOTATION}={rendered.hash} (or: alembic-operator approve {ref.name})"
        )
        phase, reason, event = (
            Phase.AWAITING_APPROVAL,
            Reason.APPROVAL_PENDING,
            EventReason.APPROVAL_PENDING,
        )
    new = _finish(migration.status, phase, reason, message, now=now, generation=ref.generation)
    new = replace(
        new,
        plan=plan,
        from_revision=plan.from_revision or None,
        current_revision=plan.from_revision or None,
        applied_revisions=(),
    )
    actions: tuple[Action, ...] = (CreateConfigMap(rendered.config_map), PostEvent(event, message))
    return Decision(new, actions)


def _awaiting(
    migration: Migration, observed: Observation, *, now: datetime, runner_image: str
) -> Decision:
    """AwaitingApproval: only an annotation naming this exact plan moves it on."""
    status, plan = migration.status, migration.status.plan
    verdict = approval(migration)
    if verdict is Approval.APPROVED:
        return _start(migration, observed, now=now, runner_image=runner_image)
    if verdict is Approval.REJECTED:
        message = f"plan {plan.hash if plan else '?'} was rejected; nothing was applied"
        new = _finish(
            status,
            Phase.FAILED,
            Reason.APPROVAL_REJECTED,
            message,
            now=now,
            generation=migration.ref.generation,
        )
        return Decision(new, (PostEvent(EventReason.MIGRATION_FAILED, message, warning=True),))
    if verdict is Approval.MISMATCH:
        message = (
            f"the approve/reject annotation names another plan; the current plan is "
            f"{plan.hash if plan else '?'} (it was rendered again: check it, then approve it)"
        )
        if status.message == message:
            return Decision(status)
        new = replace(status, message=message)
        return Decision(new, (PostEvent(EventReason.APPROVAL_MISMATCH, message, warning=True),))
    return Decision(status)


def _plan_outdated(migration: Migration, outcome: Outcome, *, now: datetime) -> Decision:
    """The database moved after the plan was approved: render a new plan, nothing applied."""
    message = f"{outcome.message}; rendering a new plan to approve"
    new = _phase(
        migration.status,
        Phase.PENDING,
        Reason.PLAN_OUTDATED,
        message,
        generation=migration.ref.generation,
        now=now,
    )
    new = replace(new, plan=None, message=message)
    event = PostEvent(EventReason.PLAN_OUTDATED, message, warning=True)
    return Decision(new, (event,), requeue_after=0.0)
