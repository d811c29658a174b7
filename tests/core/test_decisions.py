"""The operator's behaviour (alembic_operator.core.decisions): plans, decisions, transitions.

Every test drives the pure core with fixed times. Multi-step scenarios feed each decision's status
back in (``with_status``), as the shell does after writing it, so "once" means "once across
reconciles" and not merely "once per call".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from alembic_operator.core.decisions import (
    decide,
    needs_new_job,
    observation_plan,
    reject_invalid,
)
from alembic_operator.core.jobs import LABEL_ATTEMPT, LABEL_GENERATION, job_name
from alembic_operator.core.launches import (
    RETRY_ANNOTATION,
    RUNNING_RESYNC_SECONDS,
    SECRET_BACKOFF_MAX_SECONDS,
    next_job_name,
)
from alembic_operator.model.actions import CreateJob, Decision, DeleteJob, PostEvent
from alembic_operator.model.migrations import Migration
from alembic_operator.model.observations import Observation, ObservedJob, ObservedPod, SecretState
from alembic_operator.model.reasons import Reason
from alembic_operator.model.status import (
    ConditionStatus,
    ConditionType,
    JobStatus,
    LastSucceeded,
    MigrationStatus,
    Phase,
)
from tests.core.bodies import RUNNER_IMAGE, UID
from tests.core.observations import (
    APP_IMAGE,
    JOB_UID,
    LEAKY_URL,
    OTHER_UID,
    PRESENT,
    T0,
    at,
    condition_map,
    job,
    migration,
    pod,
    result_json,
    retry,
    run,
    seen,
    started,
    transition_times,
    with_generation,
    with_status,
)

TRUE, FALSE = ConditionStatus.TRUE, ConditionStatus.FALSE
READY, RECONCILING, STALLED = ConditionType.READY, ConditionType.RECONCILING, ConditionType.STALLED
E = Reason


def expect_conditions(
    status: MigrationStatus, reason: Reason, *, phase: Phase
) -> dict[ConditionType, tuple[ConditionStatus, Reason]]:
    ready, reconciling, stalled = {
        Phase.PENDING: (FALSE, TRUE, FALSE),
        Phase.RUNNING: (FALSE, TRUE, FALSE),
        Phase.SUCCEEDED: (TRUE, FALSE, FALSE),
        Phase.FAILED: (FALSE, FALSE, TRUE),
    }[phase]
    assert status.phase is phase
    return {READY: (ready, reason), RECONCILING: (reconciling, reason), STALLED: (stalled, reason)}


def assert_phase(status: MigrationStatus, phase: Phase, reason: Reason) -> None:
    assert condition_map(status) == expect_conditions(status, reason, phase=phase)


def event_reasons(events: tuple[PostEvent, ...]) -> list[tuple[Reason, bool]]:
    return [(e.reason, e.warning) for e in events]


def succeeded_result(**fields: object) -> str:
    defaults: dict[str, object] = {
        "target_revision": "head",
        "from_revisions": ("0001",),
        "to_revisions": ("0003",),
        "applied_revisions": ("0002", "0003"),
        "duration_seconds": 2.5,
        "message": "applied 2 revision(s)",
    }
    return result_json(Reason.APPLIED, **(defaults | fields))


def finished_ok(name: str, *, finished: int = 5, generation: int | None = 1) -> ObservedJob:
    return job(
        name,
        pod(exit_code=0, message=succeeded_result(), finished=at(finished)),
        generation=generation,
    )


def failed_status() -> tuple[Migration, str]:
    """A migration whose first Job failed permanently (MigrationFailed) at T0+5s."""
    m, name = started(migration())
    failing = job(
        name, pod(exit_code=10, message=result_json(Reason.MIGRATION_FAILED), finished=at(5))
    )
    decision = run(m, seen(failing), now=at(5))
    assert decision.status.phase is Phase.FAILED
    return with_status(m, decision.status), name


def succeeded_status(**spec: Any) -> tuple[Migration, str]:
    m, name = started(migration(**spec))
    decision = run(m, seen(finished_ok(name)), now=at(5))
    assert decision.status.phase is Phase.SUCCEEDED
    return with_status(m, decision.status), name


# --- what to observe -----------------------------------------------------------------------------


def _tracked(phase: Phase, *, generation: int = 1, token: str | None = None) -> MigrationStatus:
    return MigrationStatus(
        observed_generation=generation,
        phase=phase,
        job=JobStatus(name="shop-schema-tracked", attempt=1),
        attempts=1,
        retry_token=token,
    )


@pytest.mark.parametrize(
    ("m", "tracked", "wants_next"),
    [
        pytest.param(migration(), False, True, id="fresh"),
        pytest.param(migration(suspend=True), False, False, id="fresh-suspended"),
        pytest.param(migration(status=_tracked(Phase.RUNNING)), True, False, id="running"),
        pytest.param(
            migration(generation=2, status=_tracked(Phase.RUNNING)),
            True,
            False,
            id="running-spec-changed-waits",
        ),
        pytest.param(migration(status=_tracked(Phase.SUCCEEDED)), True, False, id="succeeded"),
        pytest.param(
            migration(generation=2, status=_tracked(Phase.SUCCEEDED)),
            True,
            True,
            id="succeeded-spec-changed",
        ),
        pytest.param(migration(status=_tracked(Phase.FAILED)), True, False, id="failed"),
        pytest.param(
            migration(status=_tracked(Phase.FAILED), annotations={RETRY_ANNOTATION: "1"}),
            True,
            True,
            id="failed-retry-requested",
        ),
        pytest.param(
            migration(
                status=_tracked(Phase.FAILED, token="1"), annotations={RETRY_ANNOTATION: "1"}
            ),
            True,
            False,
            id="failed-retry-already-done",
        ),
        pytest.param(
            migration(status=_tracked(Phase.SUCCEEDED), annotations={RETRY_ANNOTATION: "1"}),
            True,
            False,
            id="succeeded-retry-ignored",
        ),
        pytest.param(
            migration(generation=2, suspend=True, status=_tracked(Phase.FAILED)),
            True,
            False,
            id="spec-changed-but-suspended",
        ),
    ],
)
def test_observation_plan(m: Migration, tracked: bool, wants_next: bool) -> None:
    plan = observation_plan(m)
    names = (["shop-schema-tracked"] if tracked else []) + (
        [next_job_name(m)] if wants_next else []
    )
    assert plan.job_names == tuple(names)
    # The Secret matters only when a new Job is wanted (and may be started).
    assert plan.check_secret is wants_next


def test_next_job_name_is_the_next_attempt_of_this_generation() -> None:
    m = migration(generation=4, status=replace(_tracked(Phase.FAILED), attempts=2))
    assert next_job_name(m) == job_name("shop-schema", uid=UID, generation=4, attempt=3)
    assert next_job_name(m) != next_job_name(with_generation(m, 5))


@pytest.mark.parametrize(
    ("m", "expected"),
    [
        pytest.param(migration(), True, id="never-ran"),
        pytest.param(migration(status=_tracked(Phase.RUNNING)), False, id="running"),
        pytest.param(
            migration(generation=2, status=_tracked(Phase.RUNNING)), False, id="running-waits"
        ),
        pytest.param(migration(status=_tracked(Phase.SUCCEEDED)), False, id="succeeded"),
        pytest.param(
            migration(generation=2, status=_tracked(Phase.SUCCEEDED)), True, id="spec-changed"
        ),
        pytest.param(migration(status=_tracked(Phase.FAILED)), False, id="failed"),
        pytest.param(
            migration(status=_tracked(Phase.FAILED), annotations={RETRY_ANNOTATION: "x"}),
            True,
            id="failed-retry",
        ),
        # Pending after an earlier run (waiting for the Secret on a spec change or a retry):
        # the new Job is still wanted, or the migration never starts once the Secret appears.
        pytest.param(
            migration(status=replace(_tracked(Phase.PENDING), observed_generation=1)),
            True,
            id="pending-after-earlier-run",
        ),
    ],
)
def test_needs_new_job(m: Migration, expected: bool) -> None:
    assert needs_new_job(m) is expected


# --- starting ----------------------------------------------------------------------------------


def test_fresh_migration_with_the_secret_creates_attempt_one() -> None:
    m = migration(generation=3, revision="0003")
    decision = run(m, PRESENT, now=T0)
    create, event = decision.actions  # the Job first, then the Event
    assert isinstance(create, CreateJob)
    assert create.name == next_job_name(m)
    assert create.name == job_name("shop-schema", uid=UID, generation=3, attempt=1)
    assert create.manifest["metadata"]["labels"][LABEL_ATTEMPT] == "1"
    assert create.manifest["metadata"]["labels"][LABEL_GENERATION] == "3"
    assert isinstance(event, PostEvent)
    assert (event.reason, event.warning) == (E.MIGRATION_STARTED, False)
    assert create.name in event.message
    status = decision.status
    assert_phase(status, Phase.RUNNING, Reason.JOB_RUNNING)
    assert {c.observed_generation for c in status.conditions} == {3}
    assert status.observed_generation == 3
    assert status.attempts == 1
    assert status.job == JobStatus(name=create.name, attempt=1)
    assert status.target_revision == "0003"
    assert (status.started_at, status.finished_at, status.log_tail) == (T0, None, None)
    assert decision.requeue_after == RUNNING_RESYNC_SECONDS


def test_a_started_migration_does_not_start_another_job() -> None:
    m, name = started(migration())
    decision = run(m, seen(job(name, pod())), now=at(1))
    assert decision.changes == ()
    assert decision.events == ()
    assert decision.status.job == m.status.job


@pytest.mark.parametrize(
    ("state", "what"),
    [
        pytest.param(SecretState.MISSING_SECRET, "Secret 'shop-db' not found", id="secret"),
        pytest.param(SecretState.MISSING_KEY, "key 'url' not found in Secret 'shop-db'", id="key"),
    ],
)
def test_missing_secret_starts_nothing_and_warns_once(state: SecretState, what: str) -> None:
    m = migration(generation=2)
    first = run(m, Observation(secret=state), now=T0)
    assert first.changes == ()
    assert_phase(first.status, Phase.PENDING, Reason.SECRET_NOT_FOUND)
    assert first.status.observed_generation == 2
    assert first.status.job is None
    assert first.status.message is not None and what in first.status.message
    assert event_reasons(first.events) == [(E.SECRET_NOT_FOUND, True)]
    assert first.requeue_after == 1.0
    again = run(with_status(m, first.status), Observation(secret=state), now=at(30))
    assert again.actions == ()
    assert again.status == first.status


@pytest.mark.parametrize(
    ("waited", "delay"),
    [
        pytest.param(0, 1.0, id="at-once"),
        pytest.param(1.5, 1.0, id="minimum"),
        pytest.param(4, 2.0, id="4s"),
        pytest.param(30, 15.0, id="30s"),
        pytest.param(119, 59.5, id="just-below-cap"),
        pytest.param(120, SECRET_BACKOFF_MAX_SECONDS, id="cap"),
        pytest.param(86_400, SECRET_BACKOFF_MAX_SECONDS, id="a-day"),
    ],
)
def test_missing_secret_backoff_grows_and_is_capped(waited: float, delay: float) -> None:
    m = migration()
    waiting = with_status(m, run(m, Observation(secret=SecretState.MISSING_SECRET)).status)
    decision = run(waiting, Observation(secret=SecretState.MISSING_SECRET), now=at(waited))
    assert decision.requeue_after == delay
    assert decision.actions == ()


def test_a_missing_key_after_a_missing_secret_is_reported() -> None:
    m = migration()
    waiting = with_status(m, run(m, Observation(secret=SecretState.MISSING_SECRET)).status)
    decision = run(waiting, Observation(secret=SecretState.MISSING_KEY), now=at(10))
    assert event_reasons(decision.events) == [(E.SECRET_NOT_FOUND, True)]
    # Still the same wait: the backoff keeps growing from when it began.
    assert decision.requeue_after == 5.0


def test_the_job_starts_once_the_secret_appears() -> None:
    m = migration()
    waiting = with_status(m, run(m, Observation(secret=SecretState.MISSING_SECRET)).status)
    decision = run(waiting, PRESENT, now=at(10))
    [create] = decision.changes
    assert isinstance(create, CreateJob)
    assert create.name == next_job_name(m)
    assert_phase(decision.status, Phase.RUNNING, Reason.JOB_RUNNING)
    assert decision.status.attempts == 1
    assert event_reasons(decision.events) == [(E.MIGRATION_STARTED, False)]


def _spec_changed_after_success() -> tuple[Migration, ObservedJob]:
    m, name = succeeded_status()
    return with_generation(m, 2), finished_ok(name)


def _retry_after_failure() -> tuple[Migration, ObservedJob]:
    m, name = failed_status()
    old = job(name, pod(exit_code=10, message=result_json(Reason.MIGRATION_FAILED)), failed=True)
    return retry(m, "r1"), old


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(_spec_changed_after_success, id="spec-change"),
        pytest.param(_retry_after_failure, id="retry-annotation"),
    ],
)
def test_a_missing_secret_after_an_earlier_run_still_starts_the_job_later(
    setup: Callable[[], tuple[Migration, ObservedJob]],
) -> None:
    m, old = setup()
    waiting = run(m, seen(old, secret=SecretState.MISSING_SECRET), now=at(10))
    assert waiting.changes == ()
    assert_phase(waiting.status, Phase.PENDING, Reason.SECRET_NOT_FOUND)
    m = with_status(m, waiting.status)
    plan = observation_plan(m)
    assert plan.check_secret, "the Secret must still be looked at"
    resumed = run(m, seen(old), now=at(20))
    [create] = resumed.changes
    assert isinstance(create, CreateJob)
    assert create.name == next_job_name(m)
    assert resumed.status.phase is Phase.RUNNING
    assert resumed.status.attempts == 2
    if RETRY_ANNOTATION in m.annotations:
        assert resumed.status.retry_token == "r1"


# --- suspend -------------------------------------------------------------------------------------


def test_suspended_fresh_migration_stays_pending_once() -> None:
    m = migration(suspend=True)
    first = run(m, Observation(), now=T0)
    assert first.changes == ()
    assert_phase(first.status, Phase.PENDING, Reason.SUSPENDED)
    assert first.status.job is None
    assert event_reasons(first.events) == [(E.SUSPENDED, False)]
    assert first.requeue_after is None
    again = run(with_status(m, first.status), Observation(), now=at(60))
    assert again.actions == ()
    assert again.status == first.status


def test_suspend_after_success_starts_no_job_for_the_new_generation() -> None:
    m, name = succeeded_status()
    m = replace(with_generation(m, 2), spec=replace(m.spec, suspend=True))
    assert observation_plan(m).check_secret is False
    decision = run(m, seen(finished_ok(name), secret=None), now=at(30))
    assert decision.changes == ()
    assert_phase(decision.status, Phase.PENDING, Reason.SUSPENDED)


def test_suspend_lets_a_running_job_finish() -> None:
    m, name = started(migration())
    m = replace(with_generation(m, 2), spec=replace(m.spec, suspend=True))
    decision = run(m, seen(finished_ok(name)), now=at(5))
    assert decision.changes == ()
    assert decision.status.phase is Phase.SUCCEEDED


# --- adoption ------------------------------------------------------------------------------------


def _fresh() -> Migration:
    return migration()


def _failed_retry() -> Migration:
    return retry(failed_status()[0], "again")


@pytest.mark.parametrize(
    ("setup", "secret", "attempt"),
    [
        pytest.param(_fresh, SecretState.PRESENT, 1, id="fresh"),
        pytest.param(_fresh, SecretState.MISSING_SECRET, 1, id="fresh-secret-gone-meanwhile"),
        pytest.param(_failed_retry, SecretState.PRESENT, 2, id="retry-attempt"),
    ],
)
def test_our_job_under_the_next_name_is_adopted(
    setup: Callable[[], Migration], secret: SecretState, attempt: int
) -> None:
    m = setup()
    name = next_job_name(m)
    decision = run(m, seen(job(name, pod(), attempt=attempt), secret=secret), now=at(30))
    assert decision.changes == ()
    assert_phase(decision.status, Phase.RUNNING, Reason.JOB_RUNNING)
    assert decision.status.job == JobStatus(name=name, uid=JOB_UID, attempt=attempt)
    assert decision.status.attempts == attempt
    assert event_reasons(decision.events) == [(E.JOB_ADOPTED, False)]
    assert decision.requeue_after == 0.0


def test_an_adopted_job_that_already_finished_is_read_at_once() -> None:
    m = migration()
    name = next_job_name(m)
    adopted = run(m, seen(finished_ok(name)), now=at(30))
    decision = run(with_status(m, adopted.status), seen(finished_ok(name)), now=at(30))
    assert decision.status.phase is Phase.SUCCEEDED
    assert event_reasons(decision.events) == [(E.MIGRATION_SUCCEEDED, False)]


@pytest.mark.parametrize(
    ("owner", "shown"),
    [pytest.param(OTHER_UID, OTHER_UID, id="foreign"), pytest.param(None, "none", id="orphan")],
)
def test_a_namesake_job_of_another_owner_is_a_conflict(owner: str | None, shown: str) -> None:
    m = migration()
    name = next_job_name(m)
    decision = run(m, seen(job(name, pod(), owner=owner)), now=at(1))
    assert decision.changes == ()
    assert_phase(decision.status, Phase.FAILED, Reason.JOB_CONFLICT)
    assert decision.status.message is not None and shown in decision.status.message
    assert event_reasons(decision.events) == [(E.MIGRATION_FAILED, True)]


def test_a_job_conflict_is_reported_once() -> None:
    m = migration()
    observed = seen(job(next_job_name(m), pod(), owner=OTHER_UID))
    first = run(m, observed, now=at(1))
    again = run(with_status(m, first.status), observed, now=at(61))
    assert again.changes == ()
    assert again.events == (), "the same conflict must not post MigrationFailed on every pass"
    assert again.status.phase is Phase.FAILED


def test_deleting_the_conflicting_job_lets_the_migration_run() -> None:
    m = migration()
    first = run(m, seen(job(next_job_name(m), pod(), owner=OTHER_UID)), now=at(1))
    decision = run(with_status(m, first.status), PRESENT, now=at(60))
    [create] = decision.changes
    assert isinstance(create, CreateJob)
    assert decision.status.phase is Phase.RUNNING


# --- tracking a Job ------------------------------------------------------------------------------


def test_success_from_the_pod_result() -> None:
    m, name = started(migration())
    decision = run(m, seen(finished_ok(name, finished=7)), now=at(8))
    status = decision.status
    assert_phase(status, Phase.SUCCEEDED, Reason.APPLIED)
    assert status.current_revision == "0003"
    assert status.from_revision == "0001"
    assert status.applied_revisions == ("0002", "0003")
    assert status.duration_seconds == 2.5
    assert status.finished_at == at(7)
    assert status.observed_generation == 1
    assert status.last_succeeded == LastSucceeded(
        image=APP_IMAGE, revision="0003", generation=1, finished_at=at(7)
    )
    assert status.log_tail is None
    assert status.job == m.status.job
    [event] = decision.events
    assert (event.reason, event.warning) == (E.MIGRATION_SUCCEEDED, False)
    assert "0001 -> 0003" in event.message
    assert decision.changes == ()
    assert decision.requeue_after is None


def test_up_to_date_is_a_success() -> None:
    m, name = started(migration())
    message = result_json(
        Reason.UP_TO_DATE, from_revisions=("0003",), to_revisions=("0003",), duration_seconds=0.2
    )
    decision = run(m, seen(job(name, pod(exit_code=0, message=message, finished=at(3)))), now=at(3))
    assert_phase(decision.status, Phase.SUCCEEDED, Reason.UP_TO_DATE)
    assert decision.status.applied_revisions == ()
    [event] = decision.events
    assert "nothing to apply" in event.message


def test_success_clears_the_log_tail_of_an_earlier_failure() -> None:
    m, name = started(migration())
    m = with_status(m, replace(m.status, log_tail="old failure"))
    decision = run(m, seen(finished_ok(name)), now=at(5))
    assert decision.status.log_tail is None


PERMANENT = [
    (10, Reason.MIGRATION_FAILED),
    (11, Reason.SCHEMA_AHEAD),
    (12, Reason.MULTIPLE_HEADS),
    (13, Reason.REVISION_NOT_FOUND),
    (14, Reason.DOWNGRADE_REFUSED),
    (15, Reason.INVALID_CONFIGURATION),
    (16, Reason.STATEMENT_TIMEOUT),
]
LOG = f"INFO connecting to {LEAKY_URL}\nTraceback (most recent call last):\nboom\n"


@pytest.mark.parametrize(
    ("code", "reason"), [pytest.param(c, r, id=f"{c}-{r.value}") for c, r in PERMANENT]
)
def test_permanent_exit_code_fails_at_once(code: int, reason: Reason) -> None:
    m, name = started(migration())
    message = result_json(reason, message=f"{reason.value} on {LEAKY_URL}", duration_seconds=1.0)
    failing = job(name, pod(exit_code=code, message=message, finished=at(4), log=LOG))
    decision = run(m, seen(failing), now=at(4))
    status = decision.status
    assert_phase(status, Phase.FAILED, Reason(reason))
    assert status.finished_at == at(4)
    assert status.observed_generation == 1
    assert status.log_tail is not None and "boom" in status.log_tail
    assert "postgresql://u:***@h/db" in status.log_tail
    assert status.message is not None
    for text in (status.log_tail, status.message, *(c.message for c in status.conditions)):
        assert "secret" not in text
    [event] = decision.events
    assert (event.reason, event.warning) == (E.MIGRATION_FAILED, True)
    assert event.message.startswith(f"{reason.value}: ")
    assert "secret" not in event.message
    assert status.last_succeeded is None
    assert decision.changes == ()
    assert decision.requeue_after is None


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        pytest.param(20, Reason.DATABASE_UNREACHABLE, id="database-unreachable"),
        pytest.param(21, Reason.LOCK_TIMEOUT, id="lock-timeout"),
    ],
)
def test_retryable_exit_code_keeps_running_and_warns_once(code: int, reason: Reason) -> None:
    m, name = started(migration())
    failed_pod = pod("pod-1", exit_code=code, message=result_json(reason, message=f"x {LEAKY_URL}"))
    decision = run(m, seen(job(name, failed_pod)), now=at(4))
    status = decision.status
    assert status.phase is Phase.RUNNING
    assert condition_map(status)[RECONCILING][0] is TRUE
    assert condition_map(status)[STALLED][0] is FALSE
    assert status.message is not None
    assert reason.value in status.message and "retries" in status.message
    assert "secret" not in status.message
    assert event_reasons(decision.events) == [(E.MIGRATION_RETRYING, True)]
    assert decision.changes == ()
    assert decision.requeue_after == RUNNING_RESYNC_SECONDS
    # The Job controller starts a second pod; the same failure is not announced again.
    again = run(
        with_status(m, status), seen(job(name, failed_pod, pod("pod-2"), active=1)), now=at(6)
    )
    assert again.actions == ()
    assert again.status == status
    assert again.requeue_after == RUNNING_RESYNC_SECONDS


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        pytest.param(20, Reason.DATABASE_UNREACHABLE, id="database-unreachable"),
        pytest.param(21, Reason.LOCK_TIMEOUT, id="lock-timeout"),
    ],
)
def test_retryable_failure_is_final_when_the_job_failed(code: int, reason: Reason) -> None:
    m, name = started(migration())
    message = result_json(reason, message="gave up")
    pods = [pod(f"pod-{i}", exit_code=code, message=message, finished=at(i)) for i in (1, 2, 3)]
    failed = job(name, *pods, failed=True, failure_reason="BackoffLimitExceeded", finished_at=at(4))
    decision = run(m, seen(failed), now=at(5))
    assert_phase(decision.status, Phase.FAILED, reason)
    assert decision.status.finished_at == at(3)
    assert event_reasons(decision.events) == [(E.MIGRATION_FAILED, True)]


@pytest.mark.parametrize(
    "pods",
    [
        pytest.param((), id="no-pod"),
        pytest.param((pod(waiting="ContainerCreating"),), id="pod-never-ran"),
        pytest.param((pod(exit_code=143, finished=at(3600)),), id="pod-killed"),
    ],
)
def test_deadline_exceeded(pods: tuple[ObservedPod, ...]) -> None:
    m, name = started(migration())
    failed = job(
        name,
        *pods,
        failed=True,
        failure_reason="DeadlineExceeded",
        failure_message="Job was active longer than specified deadline",
        finished_at=at(3600),
    )
    decision = run(m, seen(failed), now=at(3601))
    assert_phase(decision.status, Phase.FAILED, Reason.DEADLINE_EXCEEDED)
    assert decision.status.finished_at == at(3600)
    assert event_reasons(decision.events) == [(E.MIGRATION_FAILED, True)]


@pytest.mark.parametrize(
    ("generation", "requeue"),
    [pytest.param(1, None, id="same-spec"), pytest.param(2, 0.0, id="spec-changed")],
)
@pytest.mark.parametrize(
    "observed",
    [
        pytest.param(lambda name: seen(), id="absent"),
        pytest.param(lambda name: seen(job(name, pod(), deleting=True)), id="deleting"),
    ],
)
def test_a_job_deleted_while_running_fails_the_migration(
    observed: Callable[[str], Observation], generation: int, requeue: float | None
) -> None:
    m, name = started(migration())
    m = with_generation(m, generation)
    decision = run(m, observed(name), now=at(9))
    assert decision.changes == ()
    assert_phase(decision.status, Phase.FAILED, Reason.JOB_DELETED)
    assert decision.status.observed_generation == 1
    assert decision.status.finished_at == at(9)
    assert decision.status.duration_seconds == 9.0
    assert event_reasons(decision.events) == [(E.JOB_DELETED, True)]
    assert decision.requeue_after == requeue
    after = run(with_status(m, decision.status), observed(name), now=at(20))
    if generation == 1:  # not re-run: no Job, no Event, nothing changes
        assert after.actions == ()
        assert after.status == decision.status
    else:  # the spec changed meanwhile: its Job is due
        assert [type(a) for a in after.changes] == [CreateJob]


COMMAND_RUNNER = {
    "image": None,
    "runner": {"type": "command", "image": APP_IMAGE, "command": ["x"]},
}


def test_a_command_job_complete_without_pod_information_is_a_success() -> None:
    m, name = started(migration(**COMMAND_RUNNER))
    decision = run(m, seen(job(name, complete=True, finished_at=at(6))), now=at(7))
    assert_phase(decision.status, Phase.SUCCEEDED, Reason.APPLIED)
    assert decision.status.finished_at == at(6)
    assert decision.status.last_succeeded is not None
    assert decision.status.last_succeeded.image == APP_IMAGE
    assert event_reasons(decision.events) == [(E.MIGRATION_SUCCEEDED, False)]


@pytest.mark.parametrize(
    "observed",
    [
        pytest.param((), id="no-pod"),
        pytest.param((pod(exit_code=0, message=""),), id="os-exit-0"),
        pytest.param((pod(exit_code=0, message="plain log text\n"),), id="log-text"),
    ],
)
def test_an_embedded_job_without_a_runner_result_fails(observed: tuple[ObservedPod, ...]) -> None:
    # Only a valid result that says so is a success: the gate stays closed.
    m, name = started(migration())
    decision = run(m, seen(job(name, *observed, complete=True, finished_at=at(6))), now=at(7))
    assert_phase(decision.status, Phase.FAILED, Reason.RUNNER_RESULT_MISSING)
    assert decision.status.last_succeeded is None
    assert (E.MIGRATION_SUCCEEDED, False) not in event_reasons(decision.events)


@pytest.mark.parametrize(
    ("waiting", "detail", "expected"),
    [
        pytest.param(
            "CreateContainerConfigError",
            'secret "shop-db" not found',
            'CreateContainerConfigError: secret "shop-db" not found',
            id="config-error",
        ),
        pytest.param("ImagePullBackOff", None, "ImagePullBackOff", id="image-pull"),
        # Nothing wrong: the start message stands (no status patch for a healthy run).
        pytest.param("ContainerCreating", None, "started (attempt 1)", id="creating-is-normal"),
    ],
)
def test_a_pod_that_cannot_start_is_reported_while_running(
    waiting: str, detail: str | None, expected: str
) -> None:
    m, name = started(migration())
    observed = seen(job(name, pod(waiting=waiting, waiting_message=detail), active=1))
    decision = run(m, observed, now=at(2))
    assert decision.status.phase is Phase.RUNNING
    assert decision.status.message is not None and expected in decision.status.message
    assert decision.actions == ()
    assert decision.requeue_after == RUNNING_RESYNC_SECONDS
    again = run(with_status(m, decision.status), observed, now=at(62))
    assert again.status == decision.status
    assert again.actions == ()


def test_a_healthy_running_job_changes_no_status() -> None:
    # Each status change is an API write: the start message stands while nothing is wrong.
    m, name = started(migration())
    for observed in (
        seen(job(name, active=1)),
        seen(job(name, pod(waiting="ContainerCreating"), active=1)),
        seen(job(name, pod(), active=1)),
    ):
        assert run(m, observed, now=at(2)) == Decision(
            m.status, requeue_after=RUNNING_RESYNC_SECONDS
        )


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        # runner.type command: any non-zero exit counts against backoffLimit (no FailJob rules).
        pytest.param(
            {"image": None, "runner": {"type": "command", "image": APP_IMAGE, "command": ["x"]}},
            1,
            id="command-exit-1",
        ),
        pytest.param(
            {"image": None, "runner": {"type": "command", "image": APP_IMAGE, "command": ["x"]}},
            10,
            id="command-exit-10-means-nothing",
        ),
        # The embedded runner killed by the kernel: no podFailurePolicy rule, so the Job retries.
        pytest.param({}, 137, id="embedded-oom-killed"),
    ],
)
def test_an_exit_the_job_retries_is_not_final(spec: dict[str, Any], code: int) -> None:
    m, name = started(migration(**spec))
    failing = job(name, pod(exit_code=code, reason="Error", finished=at(3)))
    decision = run(m, seen(failing), now=at(3))
    assert decision.status.phase is Phase.RUNNING, decision.status.message
    assert event_reasons(decision.events) == [(E.MIGRATION_RETRYING, True)]


# --- nothing to do, retries, spec changes ---------------------------------------------------------


def test_a_failed_migration_is_not_rerun_without_a_change() -> None:
    m, name = failed_status()
    old = job(name, pod(exit_code=10, message=result_json(Reason.MIGRATION_FAILED)), failed=True)
    plan = observation_plan(m)
    assert plan.job_names == (name,)
    assert plan.check_secret is False
    decision = run(m, seen(old, secret=None), now=at(3600))
    assert decision.actions == ()
    assert decision.status == m.status
    assert decision.requeue_after is None


def test_the_retry_annotation_runs_a_new_attempt_once_per_value() -> None:
    m, first_job = failed_status()
    assert m.status.attempts == 1
    m = retry(m, "r1")
    assert observation_plan(m).check_secret
    decision = run(m, PRESENT, now=at(60))
    [create] = decision.changes
    assert isinstance(create, CreateJob)
    assert create.name == job_name("shop-schema", uid=UID, generation=1, attempt=2)
    assert create.name != first_job
    assert create.manifest["metadata"]["labels"][LABEL_ATTEMPT] == "2"
    assert decision.status.attempts == 2
    assert decision.status.retry_token == "r1"
    assert decision.status.log_tail is None
    assert_phase(decision.status, Phase.RUNNING, Reason.JOB_RUNNING)
    m = with_status(m, decision.status)
    # The second attempt fails too; the same annotation value does not start a third.
    failing = job(
        create.name, pod(exit_code=10, message=result_json(Reason.MIGRATION_FAILED)), attempt=2
    )
    m = with_status(m, run(m, seen(failing), now=at(65)).status)
    assert m.status.phase is Phase.FAILED
    assert not needs_new_job(m)
    assert run(m, seen(failing), now=at(120)).actions == ()
    # A new value does.
    m = retry(m, "r2")
    third = run(m, PRESENT, now=at(180))
    [create] = third.changes
    assert isinstance(create, CreateJob)
    assert create.name == job_name("shop-schema", uid=UID, generation=1, attempt=3)
    assert third.status.retry_token == "r2"


@pytest.mark.parametrize(
    "phase",
    [pytest.param(Phase.SUCCEEDED, id="succeeded"), pytest.param(Phase.RUNNING, id="running")],
)
def test_the_retry_annotation_is_ignored_unless_failed(phase: Phase) -> None:
    if phase is Phase.SUCCEEDED:
        m, name = succeeded_status()
        observed = seen(finished_ok(name))
    else:
        m, name = started(migration())
        observed = seen(job(name, pod()))
    decision = run(retry(m, "r1"), observed, now=at(60))
    assert decision.changes == ()
    assert decision.status.retry_token is None


def test_a_spec_change_waits_for_the_running_job_then_runs_the_new_generation() -> None:
    m, name = started(migration())
    m = with_generation(m, 2)
    assert observation_plan(m).job_names == (name,)
    running = run(m, seen(job(name, pod(), active=1)), now=at(2))
    assert running.changes == ()
    assert running.status.phase is Phase.RUNNING
    m = with_status(m, running.status)
    done = run(m, seen(finished_ok(name, finished=4)), now=at(4))
    assert done.changes == ()
    assert_phase(done.status, Phase.SUCCEEDED, Reason.APPLIED)
    assert done.status.observed_generation == 1
    assert {c.observed_generation for c in done.status.conditions} == {1}
    assert done.status.last_succeeded is not None
    assert done.status.last_succeeded.generation == 1
    assert done.requeue_after == 0.0
    m = with_status(m, done.status)
    assert observation_plan(m).check_secret
    nxt = run(m, seen(finished_ok(name)), now=at(4))
    [create] = nxt.changes
    assert isinstance(create, CreateJob)
    assert create.manifest["metadata"]["labels"][LABEL_GENERATION] == "2"
    assert create.name == job_name("shop-schema", uid=UID, generation=2, attempt=2)
    assert nxt.status.observed_generation == 2
    assert nxt.status.phase is Phase.RUNNING


# --- TTL of succeeded Jobs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "observed", "waited", "requeue", "deletes"),
    [
        pytest.param(300, "present", 5, 300.0, False, id="just-finished"),
        pytest.param(300, "present", 125, 180.0, False, id="waiting"),
        pytest.param(300, "present", 305, None, True, id="expired"),
        pytest.param(300, "present", 10_000, None, True, id="long-expired"),
        pytest.param(0, "present", 5, None, True, id="ttl-zero"),
        pytest.param(300, "deleting", 305, None, False, id="already-deleting"),
        pytest.param(300, "absent", 305, None, False, id="already-gone"),
        pytest.param(None, "present", 10_000, None, False, id="no-ttl"),
    ],
)
def test_succeeded_job_ttl(
    ttl: int | None, observed: str, waited: int, requeue: float | None, deletes: bool
) -> None:
    m, name = succeeded_status(ttlSecondsAfterFinished=ttl)
    assert m.status.finished_at == at(5)
    found = {
        "present": seen(finished_ok(name), secret=None),
        "deleting": seen(replace(finished_ok(name), deleting=True), secret=None),
        "absent": seen(secret=None),
    }[observed]
    decision = run(m, found, now=at(waited))
    assert decision.status == m.status
    assert decision.requeue_after == requeue
    if deletes:
        assert decision.changes == (DeleteJob(name),)
        assert event_reasons(decision.events) == [(E.JOB_CLEANED_UP, False)]
    else:
        assert decision.actions == ()


def test_a_failed_job_is_kept_whatever_the_ttl() -> None:
    m, name = failed_status()
    m = replace(m, spec=replace(m.spec, ttl_seconds_after_finished=1))
    old = job(name, pod(exit_code=10), failed=True)
    assert run(m, seen(old, secret=None), now=at(10_000)).actions == ()


# --- invalid specs -------------------------------------------------------------------------------


def test_reject_invalid_fails_once() -> None:
    m = migration(generation=2)
    first = reject_invalid(m.ref, m.status, message="spec.revision: bad", now=T0)
    assert_phase(first.status, Phase.FAILED, Reason.INVALID_CONFIGURATION)
    assert first.status.observed_generation == 2
    assert first.status.message == "spec.revision: bad"
    assert event_reasons(first.events) == [(E.INVALID_SPEC, True)]
    assert first.changes == ()
    again = reject_invalid(m.ref, first.status, message="spec.revision: bad", now=at(300))
    assert again.actions == ()
    assert again.status == first.status


def test_reject_invalid_on_a_new_generation_reports_again() -> None:
    m = migration()
    first = reject_invalid(m.ref, m.status, message="bad", now=T0)
    ref = replace(m.ref, generation=2)
    again = reject_invalid(ref, first.status, message="still bad", now=at(60))
    assert event_reasons(again.events) == [(E.INVALID_SPEC, True)]
    assert again.status.observed_generation == 2
    # Failed -> Failed flips nothing.
    assert set(transition_times(again.status).values()) == {T0}


# --- transition times ----------------------------------------------------------------------------


def test_transition_times_move_only_when_a_condition_flips() -> None:
    m, name = started(migration())
    assert set(transition_times(m.status).values()) == {T0}
    # Retrying: still Running, nothing flips.
    failed_pod = pod(exit_code=21, message=result_json(Reason.LOCK_TIMEOUT), finished=at(10))
    m = with_status(m, run(m, seen(job(name, failed_pod)), now=at(10)).status)
    assert set(transition_times(m.status).values()) == {T0}
    # Succeeded at 20s: Ready and Reconciling flip, Stalled stays False since T0.
    ok = pod("pod-2", exit_code=0, message=succeeded_result(), finished=at(20))
    done = run(m, seen(job(name, failed_pod, ok)), now=at(21)).status
    assert transition_times(done) == {READY: at(20), RECONCILING: at(20), STALLED: T0}
    # A new generation starts at 30s: Ready and Reconciling flip back, Stalled still T0.
    m = with_generation(with_status(m, done), 2)
    rerun = run(m, seen(job(name, failed_pod, ok)), now=at(30)).status
    assert transition_times(rerun) == {READY: at(30), RECONCILING: at(30), STALLED: T0}


def test_a_failure_flips_reconciling_and_stalled_only() -> None:
    m, _ = failed_status()
    assert transition_times(m.status) == {READY: T0, RECONCILING: at(5), STALLED: at(5)}


def test_decide_is_deterministic() -> None:
    m, name = started(migration())
    observed = seen(finished_ok(name))
    assert decide(m, observed, now=at(5), runner_image=RUNNER_IMAGE) == decide(
        m, observed, now=at(5), runner_image=RUNNER_IMAGE
    )
