"""The one enum of reasons, and the runner's exit codes.

Every condition reason, Event reason, status message and ``failures_total{reason}`` label comes
from :class:`Reason`; there is no second enum (an Event's reason is a member too). The exit
codes are the contract between the runner and the Job's ``podFailurePolicy``: permanent failures
fail the Job at once, retryable ones count against ``backoffLimit``. Embedded in the runner's
zipapp: standard library only.
"""

from __future__ import annotations

import enum


class Reason(str, enum.Enum):
    """Why a migration is where it is (kstatus condition reasons, Event reasons, metric labels)."""

    # Progress and success (conditions; ApprovalPending and Suspended are Events too).
    PENDING = "Pending"
    JOB_RUNNING = "JobRunning"
    APPLIED = "Applied"
    UP_TO_DATE = "UpToDate"
    PLANNED = "Planned"
    APPROVAL_PENDING = "ApprovalPending"
    SUSPENDED = "Suspended"
    # What happened: only Events carry these (on the migration, or on a gated Deployment).
    MIGRATION_STARTED = "MigrationStarted"
    MIGRATION_SUCCEEDED = "MigrationSucceeded"
    MIGRATION_RETRYING = "MigrationRetrying"
    JOB_ADOPTED = "JobAdopted"
    JOB_CLEANED_UP = "JobCleanedUp"
    INVALID_SPEC = "InvalidSpec"
    PLAN_STARTED = "PlanStarted"
    APPROVAL_MISMATCH = "ApprovalMismatch"
    DRY_RUN_PLANNED = "DryRunPlanned"
    # A Warning on the migration when its failure keeps a Deployment held ...
    DEPLOYMENT_HELD = "DeploymentHeld"
    # ... and on the Deployment, for every hold and release.
    ROLLOUT_HELD = "RolloutHeld"
    ROLLOUT_RELEASED = "RolloutReleased"
    # The rollout gate (the DeploymentsHeld condition; see core/gates.py).
    AWAITING_MIGRATION = "AwaitingMigration"
    IMAGE_MISMATCH = "ImageMismatch"
    ROLLOUT_ALLOWED = "RolloutAllowed"
    # Permanent failures: retried only on a spec change or the retry annotation.
    MIGRATION_FAILED = "MigrationFailed"
    SCHEMA_AHEAD = "SchemaAhead"
    MULTIPLE_HEADS = "MultipleHeads"
    REVISION_NOT_FOUND = "RevisionNotFound"
    DOWNGRADE_REFUSED = "DowngradeRefused"
    INVALID_CONFIGURATION = "InvalidConfiguration"
    STATEMENT_TIMEOUT = "StatementTimeout"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    JOB_DELETED = "JobDeleted"
    JOB_CONFLICT = "JobConflict"
    PLAN_OUTDATED = "PlanOutdated"
    APPROVAL_REJECTED = "ApprovalRejected"
    # The runner's container ended without a valid result (os._exit(), killed, OOM).
    RUNNER_RESULT_MISSING = "RunnerResultMissing"
    # Retryable failures.
    DATABASE_UNREACHABLE = "DatabaseUnreachable"
    LOCK_TIMEOUT = "LockTimeout"
    SECRET_NOT_FOUND = "SecretNotFound"
    LOCK_LOST = "LockLost"
    # Permanent: the server refused the credentials, or the database does not exist.
    AUTHENTICATION_FAILED = "AuthenticationFailed"
    DATABASE_NOT_FOUND = "DatabaseNotFound"
    # The operator cannot read a finished plan pod's log (its SQL): Planning while it retries,
    # then a permanent failure (the log may be gone with its node).
    LOGS_UNREADABLE = "LogsUnreadable"


class ExitCode(enum.IntEnum):
    """The runner's exit codes (documented in docs/runner.md)."""

    OK = 0
    MIGRATION_FAILED = 10
    SCHEMA_AHEAD = 11
    MULTIPLE_HEADS = 12
    REVISION_NOT_FOUND = 13
    DOWNGRADE_REFUSED = 14
    INVALID_CONFIGURATION = 15
    STATEMENT_TIMEOUT = 16
    PLAN_OUTDATED = 17
    AUTHENTICATION_FAILED = 18
    DATABASE_NOT_FOUND = 19
    DATABASE_UNREACHABLE = 20
    LOCK_TIMEOUT = 21
    LOCK_LOST = 22


SUCCESS_REASONS = frozenset({Reason.APPLIED, Reason.UP_TO_DATE, Reason.PLANNED})

_EXIT_CODES = {
    Reason.APPLIED: ExitCode.OK,
    Reason.UP_TO_DATE: ExitCode.OK,
    Reason.PLANNED: ExitCode.OK,
    Reason.MIGRATION_FAILED: ExitCode.MIGRATION_FAILED,
    Reason.SCHEMA_AHEAD: ExitCode.SCHEMA_AHEAD,
    Reason.MULTIPLE_HEADS: ExitCode.MULTIPLE_HEADS,
    Reason.REVISION_NOT_FOUND: ExitCode.REVISION_NOT_FOUND,
    Reason.DOWNGRADE_REFUSED: ExitCode.DOWNGRADE_REFUSED,
    Reason.INVALID_CONFIGURATION: ExitCode.INVALID_CONFIGURATION,
    Reason.STATEMENT_TIMEOUT: ExitCode.STATEMENT_TIMEOUT,
    Reason.PLAN_OUTDATED: ExitCode.PLAN_OUTDATED,
    Reason.AUTHENTICATION_FAILED: ExitCode.AUTHENTICATION_FAILED,
    Reason.DATABASE_NOT_FOUND: ExitCode.DATABASE_NOT_FOUND,
    Reason.DATABASE_UNREACHABLE: ExitCode.DATABASE_UNREACHABLE,
    Reason.LOCK_TIMEOUT: ExitCode.LOCK_TIMEOUT,
    Reason.LOCK_LOST: ExitCode.LOCK_LOST,
}

PERMANENT_EXIT_CODES = tuple(sorted(int(c) for c in ExitCode if 10 <= c < 20))
RETRYABLE_EXIT_CODES = tuple(sorted(int(c) for c in ExitCode if c >= 20))


def exit_code_for(reason: Reason) -> ExitCode:
    """The runner's exit code for an outcome; reasons the runner never reports are errors."""
    try:
        return _EXIT_CODES[reason]
    except KeyError:
        raise ValueError(f"the runner does not report {reason.value}") from None


def is_retryable_exit_code(code: int) -> bool:
    return code in RETRYABLE_EXIT_CODES
