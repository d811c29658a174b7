"""What the operator decided to do, as data: the executor performs these, nothing else does.

Must not: do I/O or import Kubernetes libraries. Events carry reasons from :class:`EventReason`;
failures in their message name a :class:`~alembic_operator.model.reasons.Reason`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alembic_operator.model.status import MigrationStatus


class EventReason(enum.StrEnum):
    """Reasons of the Kubernetes Events posted on a DatabaseMigration."""

    MIGRATION_STARTED = "MigrationStarted"
    MIGRATION_SUCCEEDED = "MigrationSucceeded"
    MIGRATION_FAILED = "MigrationFailed"
    MIGRATION_RETRYING = "MigrationRetrying"
    JOB_ADOPTED = "JobAdopted"
    JOB_DELETED = "JobDeleted"
    JOB_CLEANED_UP = "JobCleanedUp"
    SECRET_NOT_FOUND = "SecretNotFound"
    SUSPENDED = "Suspended"
    INVALID_SPEC = "InvalidSpec"


@dataclass(frozen=True)
class CreateJob:
    """Create the Job; a 409 for a Job this migration owns is adoption, not an error."""

    manifest: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True)
class DeleteJob:
    """Delete a succeeded Job once its TTL has passed (its pods go with it)."""

    name: str


@dataclass(frozen=True)
class PostEvent:
    """An Event on the migration; posted only after the status it reports was written."""

    reason: EventReason
    message: str
    warning: bool = False


Action = CreateJob | DeleteJob | PostEvent


@dataclass(frozen=True)
class Decision:
    """The next status, the actions to get there, and when to look again (seconds)."""

    status: MigrationStatus
    actions: tuple[Action, ...] = ()
    requeue_after: float | None = None

    @property
    def events(self) -> tuple[PostEvent, ...]:
        return tuple(a for a in self.actions if isinstance(a, PostEvent))

    @property
    def changes(self) -> tuple[CreateJob | DeleteJob, ...]:
        return tuple(a for a in self.actions if not isinstance(a, PostEvent))
