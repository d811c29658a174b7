"""Starting a migration's next Job: create it, adopt one that exists, or wait for the Secret.

Part of :func:`alembic_operator.core.decisions.decide`. One Job per (generation, attempt, mode),
named deterministically: a Job found under the next attempt's name is adopted when this
migration owns it (a crash between create and status write), refused otherwise. Pure.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from alembic_operator.core.conditions import find_condition
from alembic_operator.core.invocation import RunMode
from alembic_operator.core.jobs import build_job, job_name
from alembic_operator.core.transitions import finished, with_phase
from alembic_operator.model.actions import Action, CreateJob, Decision, PostEvent
from alembic_operator.model.migrations import Migration
from alembic_operator.model.observations import Observation, ObservedJob, SecretState
from alembic_operator.model.reasons import Reason
from alembic_operator.model.spec import GROUP
from alembic_operator.model.status import (
    ConditionType,
    JobStatus,
    MigrationStatus,
    Phase,
)

RETRY_ANNOTATION = f"{GROUP}/retry"
SECRET_BACKOFF_MIN_SECONDS = 1.0
SECRET_BACKOFF_MAX_SECONDS = 60.0
_PENDING_MARKERS = (ConditionType.READY, ConditionType.RECONCILING)
# Watch events drive progress; this only bounds the damage of a missed one.
RUNNING_RESYNC_SECONDS = 60.0


def next_job_name(migration: Migration, mode: RunMode = RunMode.APPLY) -> str:
    ref = migration.ref
    return job_name(
        ref.name,
        uid=ref.uid,
        generation=ref.generation,
        attempt=migration.status.attempts + 1,
        mode=mode,
    )


def start_job(
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
            with_phase(
                status, Phase.PENDING, Reason.SUSPENDED, message, generation=ref.generation, now=now
            ),
            message=message,
            observed_generation=ref.generation,
        )
        return Decision(new, (PostEvent(Reason.SUSPENDED, message),))
    attempt = status.attempts + 1
    name = next_job_name(migration, mode)
    # Every start consumes the annotation's current value: only a value set after this start
    # (e.g. not one already in the manifest at creation) asks for a retry after a failure.
    token = migration.annotations.get(RETRY_ANNOTATION)
    existing = observed.job(name)
    if existing is not None:
        return adopt_job(migration, existing, attempt=attempt, token=token, now=now, mode=mode)
    if observed.secret is not SecretState.PRESENT:
        return secret_missing(migration, observed.secret, now=now)
    planning = mode is RunMode.PLAN
    message = start_message(name, attempt=attempt, revision=spec.revision, mode=mode)
    new = running(
        migration, JobStatus(name=name, attempt=attempt), message, token, now=now, mode=mode
    )
    approved = status.plan if not planning and status.plan else None
    job = build_job(
        migration, runner_image=runner_image, attempt=attempt, mode=mode, approved=approved
    )
    event = Reason.PLAN_STARTED if planning else Reason.MIGRATION_STARTED
    actions: tuple[Action, ...] = (CreateJob(job), PostEvent(event, message))
    return Decision(new, actions, requeue_after=RUNNING_RESYNC_SECONDS)


def start_message(name: str, *, attempt: int, revision: str | None, mode: RunMode) -> str:
    """The status message from a Job's start until a problem shows (see decisions._track)."""
    what = "plan Job" if mode is RunMode.PLAN else "Job"
    return f"{what} {name} started (attempt {attempt}) to revision {revision}"


def adopt_job(
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
        new = finished(
            migration.status,
            Phase.FAILED,
            Reason.JOB_CONFLICT,
            message,
            now=now,
            generation=migration.ref.generation,
        )
        return Decision(new, (PostEvent(Reason.MIGRATION_FAILED, message, warning=True),))
    message = f"adopted the existing Job {job.name} (attempt {attempt})"
    new = running(
        migration,
        JobStatus(name=job.name, uid=job.uid, attempt=attempt),
        message,
        token,
        now=now,
        mode=mode,
    )
    # Look again at once: the adopted Job may already have finished.
    return Decision(new, (PostEvent(Reason.JOB_ADOPTED, message),), requeue_after=0.0)


def running(
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
    new = with_phase(status, phase, Reason.JOB_RUNNING, message, generation=ref.generation, now=now)
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
        failed_revision=None,
        from_revision=status.current_revision,
        applied_revisions=(),
        # A new plan replaces the old one; an approved plan stays while it is applied.
        plan=None if mode is RunMode.PLAN else status.plan,
    )


def secret_missing(migration: Migration, state: SecretState | None, *, now: datetime) -> Decision:
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
        with_phase(
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
        new, (PostEvent(Reason.SECRET_NOT_FOUND, message, warning=True),), requeue_after=delay
    )
