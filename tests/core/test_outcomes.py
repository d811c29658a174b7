"""Reading a migration Job's outcome (alembic_operator.core.outcomes) from its pods and state."""

from __future__ import annotations

import pytest

from alembic_operator.core.outcomes import (
    LOG_TAIL_BYTES,
    Outcome,
    Retrying,
    read_outcome,
    waiting_problem,
)
from alembic_operator.model.observations import ObservedPod
from alembic_operator.model.reasons import Reason
from alembic_operator.model.spec import RunnerType
from tests.core.observations import LEAKY_URL, at, job, pod, result_json

NAME = "shop-schema-0123456789"
# With terminationMessagePolicy FallbackToLogsOnError, a container that wrote no termination
# message and failed gets the end of its log as the message: text, not the runner's JSON.
LOG_TEXT = f"Traceback (most recent call last):\n  ...\nOperationalError: {LEAKY_URL} refused\n"


@pytest.mark.parametrize(
    "pods",
    [
        pytest.param((), id="no-pod-yet"),
        pytest.param((pod(waiting="ContainerCreating"),), id="creating"),
        pytest.param((pod(),), id="running"),
    ],
)
def test_nothing_is_known_while_the_job_runs(pods: tuple[ObservedPod, ...]) -> None:
    assert read_outcome(job(NAME, *pods, active=1)) is None


def test_success_carries_the_runner_result() -> None:
    message = result_json(
        Reason.APPLIED, to_revisions=("0003",), applied_revisions=("0003",), message="done"
    )
    finished = pod(exit_code=0, message=message, finished=at(3))
    outcome = read_outcome(job(NAME, finished))
    assert isinstance(outcome, Outcome)
    assert outcome.succeeded
    assert (outcome.reason, outcome.message) == (Reason.APPLIED, "done")
    assert outcome.result is not None and outcome.result.to_revisions == ("0003",)
    assert outcome.pod == finished
    assert outcome.log_tail is None


NO_RESULT = [
    pytest.param("", id="no-message"),
    pytest.param("INFO upgrade 0002 -> 0003\n", id="log-text"),
    pytest.param('{"reason": "NoSuchReason"}', id="json-not-a-result"),
    pytest.param('{"outcome": "Succeeded", "reason": "Applied"', id="cut-json"),
]


@pytest.mark.parametrize("message", NO_RESULT)
def test_a_command_runner_succeeds_on_exit_0_without_a_result(message: str) -> None:
    outcome = read_outcome(job(NAME, pod(exit_code=0, message=message)), runner=RunnerType.COMMAND)
    assert isinstance(outcome, Outcome)
    assert outcome.succeeded
    assert outcome.reason is Reason.APPLIED
    assert outcome.result is None


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        # os._exit(0) in a revision: exit 0, no termination message.
        *[pytest.param(0, m, Outcome, id=f"exit-0-{p.id}") for p in NO_RESULT for m in p.values],
        # A result that says success, from a container that did not exit 0 (or the reverse).
        pytest.param(0, result_json(Reason.MIGRATION_FAILED), Outcome, id="exit-0-failed-result"),
        pytest.param(137, "", Retrying, id="killed"),
        pytest.param(137, result_json(Reason.APPLIED), Retrying, id="killed-after-success"),
        pytest.param(1, "Traceback ...", Retrying, id="interpreter-error"),
    ],
)
def test_an_embedded_runner_without_a_valid_result_never_succeeds(
    code: int, message: str, kind: type
) -> None:
    outcome = read_outcome(job(NAME, pod(exit_code=code, message=message, reason="Error")))
    assert isinstance(outcome, kind)
    if isinstance(outcome, Outcome):
        assert not outcome.succeeded
    expected = Reason.MIGRATION_FAILED if message == result_json(Reason.MIGRATION_FAILED) else None
    assert outcome.reason is (expected or Reason.RUNNER_RESULT_MISSING)
    final = read_outcome(
        job(NAME, pod(exit_code=code, message=message), failed=True, failure_reason="PodFailed")
    )
    assert isinstance(final, Outcome)
    assert (final.succeeded, final.reason) == (False, expected or Reason.RUNNER_RESULT_MISSING)


@pytest.mark.parametrize(
    ("runner", "succeeded", "reason"),
    [
        pytest.param(RunnerType.EMBEDDED, False, Reason.RUNNER_RESULT_MISSING, id="embedded"),
        pytest.param(RunnerType.COMMAND, True, Reason.APPLIED, id="command"),
    ],
)
def test_a_complete_job_without_pods(runner: RunnerType, succeeded: bool, reason: Reason) -> None:
    outcome = read_outcome(job(NAME, complete=True), runner=runner)
    assert isinstance(outcome, Outcome)
    assert (outcome.succeeded, outcome.reason, outcome.result) == (succeeded, reason, None)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        pytest.param(10, Reason.MIGRATION_FAILED, id="10"),
        pytest.param(11, Reason.SCHEMA_AHEAD, id="11"),
        pytest.param(12, Reason.MULTIPLE_HEADS, id="12"),
        pytest.param(13, Reason.REVISION_NOT_FOUND, id="13"),
        pytest.param(14, Reason.DOWNGRADE_REFUSED, id="14"),
        pytest.param(15, Reason.INVALID_CONFIGURATION, id="15"),
        pytest.param(16, Reason.STATEMENT_TIMEOUT, id="16"),
    ],
)
def test_permanent_exit_code_without_json_maps_to_its_reason(code: int, reason: Reason) -> None:
    failed = pod(exit_code=code, message=LOG_TEXT, log=LOG_TEXT, finished=at(2))
    outcome = read_outcome(job(NAME, failed))
    assert isinstance(outcome, Outcome)
    assert not outcome.succeeded
    assert outcome.reason is reason
    assert outcome.result is None
    assert f"exited with code {code}" in outcome.message
    assert outcome.log_tail is not None and "u:***@h/db" in outcome.log_tail
    assert "secret" not in outcome.log_tail
    assert "secret" not in outcome.message


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        pytest.param(20, Reason.DATABASE_UNREACHABLE, id="20"),
        pytest.param(21, Reason.LOCK_TIMEOUT, id="21"),
    ],
)
def test_retryable_exit_code_without_json_maps_to_its_reason(code: int, reason: Reason) -> None:
    failed = pod(exit_code=code, message=LOG_TEXT, log=LOG_TEXT)
    retrying = read_outcome(job(NAME, failed, pod("pod-2"), active=1))
    assert isinstance(retrying, Retrying)
    assert (retrying.reason, retrying.failed_pods) == (reason, 1)
    final = read_outcome(
        job(NAME, failed, failed=True, failure_reason="BackoffLimitExceeded", failure_message="x")
    )
    assert isinstance(final, Outcome)
    assert (final.succeeded, final.reason) == (False, reason)
    assert final.message.endswith("; x")
    assert final.log_tail is not None and "secret" not in final.log_tail


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        pytest.param(
            (
                pod("pod-1", exit_code=21, message=result_json(Reason.LOCK_TIMEOUT)),
                pod("pod-2", exit_code=0, message=result_json(Reason.APPLIED)),
            ),
            Reason.APPLIED,
            id="retry-then-success",
        ),
        pytest.param(
            (
                pod("pod-1", exit_code=20, message=result_json(Reason.DATABASE_UNREACHABLE)),
                pod("pod-2", exit_code=11, message=result_json(Reason.SCHEMA_AHEAD)),
            ),
            Reason.SCHEMA_AHEAD,
            id="retry-then-permanent",
        ),
        pytest.param(
            (
                pod("pod-1", exit_code=20, message=result_json(Reason.DATABASE_UNREACHABLE)),
                pod("pod-2", exit_code=21, message=result_json(Reason.LOCK_TIMEOUT)),
                pod("pod-3"),
            ),
            Reason.LOCK_TIMEOUT,
            id="newest-terminated-while-another-runs",
        ),
    ],
)
def test_the_newest_terminated_pod_wins(pods: tuple[ObservedPod, ...], expected: Reason) -> None:
    outcome = read_outcome(job(NAME, *pods))
    assert outcome is not None
    assert outcome.reason is expected


def test_retrying_counts_the_failed_pods() -> None:
    pods = [pod(f"pod-{i}", exit_code=20) for i in (1, 2)]
    retrying = read_outcome(job(NAME, *pods, pod("pod-3"), active=1))
    assert isinstance(retrying, Retrying)
    assert retrying.failed_pods == 2


@pytest.mark.parametrize(
    ("failure_reason", "failure_message", "reason"),
    [
        pytest.param(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            Reason.DEADLINE_EXCEEDED,
            id="deadline",
        ),
        pytest.param(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            Reason.MIGRATION_FAILED,
            id="backoff-limit",
        ),
        pytest.param(None, None, Reason.MIGRATION_FAILED, id="no-detail"),
    ],
)
def test_a_failed_job_without_a_pod_result(
    failure_reason: str | None, failure_message: str | None, reason: Reason
) -> None:
    failed = job(NAME, failed=True, failure_reason=failure_reason, failure_message=failure_message)
    outcome = read_outcome(failed)
    assert isinstance(outcome, Outcome)
    assert (outcome.succeeded, outcome.reason) == (False, reason)
    assert outcome.message == (failure_message or "the migration Job failed")
    assert outcome.log_tail is None


def test_deadline_wins_over_the_killed_pods_exit_code() -> None:
    killed = pod(exit_code=143, reason="Error")
    outcome = read_outcome(job(NAME, killed, failed=True, failure_reason="DeadlineExceeded"))
    assert isinstance(outcome, Outcome)
    assert outcome.reason is Reason.DEADLINE_EXCEEDED


def test_job_failure_messages_are_redacted() -> None:
    outcome = read_outcome(job(NAME, failed=True, failure_message=f"could not reach {LEAKY_URL}"))
    assert isinstance(outcome, Outcome)
    assert "secret" not in outcome.message


def test_the_log_tail_is_cut_to_its_end() -> None:
    log = "x" * 10_000 + "THE END"
    outcome = read_outcome(job(NAME, pod(exit_code=10, log=log)))
    assert isinstance(outcome, Outcome)
    assert outcome.log_tail is not None
    assert len(outcome.log_tail.encode()) <= LOG_TAIL_BYTES
    assert outcome.log_tail.endswith("THE END")


def test_an_exit_the_job_controller_retries_is_not_final() -> None:
    # Exit 137 (OOMKilled) matches no podFailurePolicy rule: the Job counts it against
    # backoffLimit and starts another pod, exactly like the runner's retryable codes.
    oom = pod(exit_code=137, reason="OOMKilled")
    assert isinstance(read_outcome(job(NAME, oom)), Retrying)
    final = read_outcome(job(NAME, oom, failed=True, failure_reason="BackoffLimitExceeded"))
    assert isinstance(final, Outcome)
    assert final.reason is Reason.RUNNER_RESULT_MISSING
    assert "OOMKilled" in final.message


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        pytest.param((), None, id="no-pod"),
        pytest.param((pod(),), None, id="running"),
        pytest.param((pod(waiting="ContainerCreating"),), None, id="creating"),
        pytest.param((pod(waiting="PodInitializing"),), None, id="initializing"),
        pytest.param((pod(exit_code=0),), None, id="terminated"),
        pytest.param(
            (pod(waiting="CreateContainerConfigError", waiting_message='secret "db" not found'),),
            'CreateContainerConfigError: secret "db" not found',
            id="config-error",
        ),
        pytest.param((pod(waiting="ImagePullBackOff"),), "ImagePullBackOff", id="no-message"),
        pytest.param(
            (pod(waiting="CrashLoopBackOff", waiting_message=f"dsn {LEAKY_URL}"),),
            "CrashLoopBackOff: dsn postgresql://u:***@h/db",
            id="redacted",
        ),
        pytest.param(
            (pod("old", waiting="ImagePullBackOff"), pod("new")),
            None,
            id="only-the-newest-pod",
        ),
    ],
)
def test_waiting_problem(pods: tuple[ObservedPod, ...], expected: str | None) -> None:
    assert waiting_problem(job(NAME, *pods)) == expected
