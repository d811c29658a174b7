"""Reads a migration Job's outcome from its pods and conditions, as early as it is known.

The runner's pod reports its result the moment its container terminates (termination message
and exit code); the Job controller confirms about a second later. A success or a permanent
failure is final as soon as the pod says so; a retryable failure is final only when the Job
has failed (otherwise the Job controller starts another pod). Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic_operator.model.observations import ObservedJob, ObservedPod
from alembic_operator.model.reasons import PERMANENT_EXIT_CODES, ExitCode, Reason
from alembic_operator.model.results import RunnerResult, decode_result
from alembic_operator.model.spec import RunnerType
from alembic_operator.redaction import Redactor, truncate_utf8

LOG_TAIL_BYTES = 4096
_REASON_BY_EXIT_CODE = {
    int(ExitCode.MIGRATION_FAILED): Reason.MIGRATION_FAILED,
    int(ExitCode.SCHEMA_AHEAD): Reason.SCHEMA_AHEAD,
    int(ExitCode.MULTIPLE_HEADS): Reason.MULTIPLE_HEADS,
    int(ExitCode.REVISION_NOT_FOUND): Reason.REVISION_NOT_FOUND,
    int(ExitCode.DOWNGRADE_REFUSED): Reason.DOWNGRADE_REFUSED,
    int(ExitCode.INVALID_CONFIGURATION): Reason.INVALID_CONFIGURATION,
    int(ExitCode.STATEMENT_TIMEOUT): Reason.STATEMENT_TIMEOUT,
    int(ExitCode.AUTHENTICATION_FAILED): Reason.AUTHENTICATION_FAILED,
    int(ExitCode.DATABASE_NOT_FOUND): Reason.DATABASE_NOT_FOUND,
    int(ExitCode.DATABASE_UNREACHABLE): Reason.DATABASE_UNREACHABLE,
    int(ExitCode.LOCK_TIMEOUT): Reason.LOCK_TIMEOUT,
    int(ExitCode.LOCK_LOST): Reason.LOCK_LOST,
}
# Messages from pods are the application's text: mask credential-shaped strings in them too.
_REDACTOR = Redactor()


@dataclass(frozen=True)
class Outcome:
    """A final result of a Job (``result`` is the runner's own report when there is one)."""

    succeeded: bool
    reason: Reason
    message: str
    result: RunnerResult | None = None
    log_tail: str | None = None
    pod: ObservedPod | None = None


@dataclass(frozen=True)
class Retrying:
    """A pod failed with a retryable code and the Job will try again."""

    reason: Reason
    message: str
    failed_pods: int


def read_outcome(
    job: ObservedJob, *, runner: RunnerType = RunnerType.EMBEDDED
) -> Outcome | Retrying | None:
    """The Job's outcome, a retry in progress, or ``None`` while it is still running.

    The embedded runner always reports a result: only a valid result that says so is a
    success, and a container that ends without one (``os._exit(0)``, killed, OOM) failed with
    ``RunnerResultMissing``, whatever its exit code. A failed pod is final only when its exit
    code is one the Job's podFailurePolicy fails on at once (the embedded runner's permanent
    codes; none for a custom command) or when the Job itself has failed; otherwise the Job
    controller starts another pod. A custom command reports no result: its exit code decides.
    """
    embedded = runner is RunnerType.EMBEDDED
    permanent = frozenset(PERMANENT_EXIT_CODES) if embedded else frozenset()
    pod = _last_terminated(job)
    if pod is not None and pod.terminated is not None:
        result = _result_of(pod)
        code = pod.terminated.exit_code
        if code == 0 and not embedded:
            return Outcome(True, Reason.APPLIED, "the migration Job succeeded", pod=pod)
        if code == 0 and result is not None and result.succeeded and int(result.exit_code) == 0:
            return Outcome(True, result.reason, result.message, result=result, pod=pod)
        reason = _failure_reason(code, result, embedded=embedded)
        message = _failure_message(pod, result=result, job=job, embedded=embedded)
        if code == 0 or code in permanent or job.failed:
            if job.failed and job.failure_reason == "DeadlineExceeded":
                reason = Reason.DEADLINE_EXCEEDED
            return Outcome(False, reason, message, result=result, log_tail=_log_tail(pod), pod=pod)
        failed = sum(1 for p in job.pods if p.terminated and p.terminated.exit_code != 0)
        return Retrying(reason, message, failed)
    if job.complete:
        if embedded:
            return Outcome(
                False,
                Reason.RUNNER_RESULT_MISSING,
                "the migration Job completed but no terminated pod with a runner result was "
                "found: not counted as a success",
            )
        return Outcome(True, Reason.APPLIED, "the migration Job completed (no runner result)")
    if job.failed:
        reason = (
            Reason.DEADLINE_EXCEEDED
            if job.failure_reason == "DeadlineExceeded"
            else Reason.MIGRATION_FAILED
        )
        detail = job.failure_message or job.failure_reason or "the migration Job failed"
        return Outcome(False, reason, _REDACTOR.redact(detail), log_tail=_log_tail(_last(job)))
    return None


def _failure_reason(code: int, result: RunnerResult | None, *, embedded: bool) -> Reason:
    if result is not None and not result.succeeded:
        return result.reason
    if not embedded:
        return _REASON_BY_EXIT_CODE.get(code, Reason.MIGRATION_FAILED)
    # The runner's own exit codes say what it found even when its message was lost; any other
    # ending (0 without a result, a signal, an interpreter error) left no result at all.
    return _REASON_BY_EXIT_CODE.get(code, Reason.RUNNER_RESULT_MISSING)


def waiting_problem(job: ObservedJob) -> str | None:
    """Why the newest pod cannot start (e.g. CreateContainerConfigError), if it cannot."""
    pod = _last(job)
    if pod is None or pod.waiting_reason in (None, "ContainerCreating", "PodInitializing"):
        return None
    return _REDACTOR.redact(f"{pod.waiting_reason}: {pod.waiting_message or ''}".strip(": "))


def _last(job: ObservedJob) -> ObservedPod | None:
    return job.pods[-1] if job.pods else None


def _last_terminated(job: ObservedJob) -> ObservedPod | None:
    done = [p for p in job.pods if p.terminated is not None]
    return done[-1] if done else None


def _result_of(pod: ObservedPod) -> RunnerResult | None:
    if pod.terminated is None or not pod.terminated.message:
        return None
    try:
        return decode_result(pod.terminated.message)
    except ValueError:
        return None


def _failure_message(
    pod: ObservedPod, *, result: RunnerResult | None, job: ObservedJob, embedded: bool
) -> str:
    assert pod.terminated is not None
    if result is not None and not result.succeeded:
        text = result.message
    else:
        text = (
            f"the migration container exited with code {pod.terminated.exit_code}"
            f" ({pod.terminated.reason or 'Error'}) without a runner result"
        )
        if embedded and result is not None:
            text += " (its result said success, but the container did not exit 0)"
        elif embedded and pod.terminated.exit_code == 0:
            text += (
                ": the process ended before the runner could report (os._exit() in a"
                " migration?); the database may be anywhere between its start and the target"
            )
        if job.failed and job.failure_message:
            text += f"; {job.failure_message}"
    return _REDACTOR.redact(text)


def _log_tail(pod: ObservedPod | None) -> str | None:
    if pod is None or not pod.log_tail:
        return None
    return truncate_utf8(_REDACTOR.redact(pod.log_tail), LOG_TAIL_BYTES)
