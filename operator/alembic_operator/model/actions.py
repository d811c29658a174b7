"""What the operator decided to do, as data: the executor performs these, nothing else does.

Must not: do I/O or import Kubernetes libraries. Events carry a reason from the one enum,
:class:`~alembic_operator.model.reasons.Reason`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alembic_operator.model.observations import ObservedDeployment
from alembic_operator.model.reasons import Reason
from alembic_operator.model.status import MigrationStatus


@dataclass(frozen=True)
class CreateJob:
    """Create the Job; a 409 for a Job this migration owns is adoption, not an error."""

    manifest: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True)
class CreateConfigMap:
    """Create a ConfigMap the migration owns (a plan's SQL); one that exists already is kept."""

    manifest: Mapping[str, Any]


@dataclass(frozen=True)
class DeleteJob:
    """Delete a succeeded Job once its TTL has passed (its pods go with it)."""

    name: str


@dataclass(frozen=True)
class DeploymentRef:
    """A Deployment in the migration's namespace, as an Event's involved object."""

    name: str
    uid: str = ""


@dataclass(frozen=True)
class HoldDeployment:
    """Pause a gated Deployment and name the migration(s) holding it (``held_by``).

    ``seen`` is the Deployment the hold was decided on: the patch tests that its held-by
    annotation and ``spec.paused`` are still as seen (another holder or a person changed them:
    decided again), while scaling and status writes, which the gate never reads, do not stop it.
    """

    seen: ObservedDeployment
    held_by: tuple[str, ...]
    pause: bool = True

    @property
    def name(self) -> str:
        return self.seen.name


@dataclass(frozen=True)
class ReleaseDeployment:
    """Drop this migration from a Deployment's holders; unpause when none is left.

    Guarded like :class:`HoldDeployment`, and also by the containers' images the verdict read: a
    template changed meanwhile is decided again, never released on the old images' verdict.
    """

    seen: ObservedDeployment
    held_by: tuple[str, ...]  # the holders left (empty: the annotation is removed)
    unpause: bool = True

    @property
    def name(self) -> str:
        return self.seen.name


@dataclass(frozen=True)
class PostEvent:
    """An Event on the migration (or on ``deployment``), posted after the status was written."""

    reason: Reason
    message: str
    warning: bool = False
    deployment: DeploymentRef | None = None


Action = CreateJob | CreateConfigMap | DeleteJob | HoldDeployment | ReleaseDeployment | PostEvent


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
    def changes(self) -> tuple[CreateJob | CreateConfigMap | DeleteJob, ...]:
        """Job changes (made before the status patch)."""
        return tuple(
            a for a in self.actions if isinstance(a, CreateJob | CreateConfigMap | DeleteJob)
        )

    @property
    def holds(self) -> tuple[HoldDeployment, ...]:
        """Deployments to hold: before the status patch (holding early is the safe side)."""
        return tuple(a for a in self.actions if isinstance(a, HoldDeployment))

    @property
    def releases(self) -> tuple[ReleaseDeployment, ...]:
        """Deployments to release: only after the status that allows it was written."""
        return tuple(a for a in self.actions if isinstance(a, ReleaseDeployment))
