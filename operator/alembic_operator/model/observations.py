"""What the operator saw in the cluster for one migration: its Jobs, their pods, the Secret, and
the Deployments it gates.

Typed, immutable values built by the observing adapter (raw API objects stop there) and read by
:func:`alembic_operator.core.decisions.decide`. Must not: do I/O or import Kubernetes libraries.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from alembic_operator.model.spec import LabelSelector, empty_mapping


class SecretState(enum.StrEnum):
    """Whether the database URL's Secret and key exist (their values are never kept)."""

    PRESENT = "Present"
    MISSING_SECRET = "MissingSecret"
    MISSING_KEY = "MissingKey"


@dataclass(frozen=True)
class Termination:
    """The migrate container's end: exit code and termination message (the runner's JSON)."""

    exit_code: int
    reason: str = ""
    message: str = ""
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ObservedPod:
    name: str
    created_at: datetime | None = None
    terminated: Termination | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    image_id: str | None = None  # the migrate container's imageID (a digest where one is known)
    log_tail: str | None = None  # read only for a failed migrate container
    output: str | None = None  # the whole log of a finished plan pod (its SQL)
    uid: str = ""
    output_error: str | None = None  # why that log could not be read (then output is None)


@dataclass(frozen=True)
class ObservedJob:
    """A migration Job as the Job controller reports it, with its pods (oldest first)."""

    name: str
    uid: str
    owner_uid: str | None = None
    generation: int | None = None  # from the Job's label
    image: str | None = None  # the migrate container's image
    mode: str = "apply"  # "plan" for a plan Job (its label)
    attempt: int | None = None
    deleting: bool = False
    complete: bool = False
    failed: bool = False
    failure_reason: str | None = None  # DeadlineExceeded, BackoffLimitExceeded, PodFailurePolicy
    failure_message: str | None = None
    active: int = 0
    pods: tuple[ObservedPod, ...] = ()
    finished_at: datetime | None = None

    @property
    def is_finished(self) -> bool:
        return self.complete or self.failed


@dataclass(frozen=True)
class ObservedDeployment:
    """A Deployment as the rollout gate sees it (see :mod:`alembic_operator.core.gates`).

    ``held_by`` is the parsed ``alembic-operator.dev/held-by`` annotation (migration names, in
    order); ``images`` the images of its pod template's containers in order (init containers
    excluded). ``held_by_value`` is that annotation exactly as stored (``None``: absent) and
    ``has_annotations`` whether ``metadata.annotations`` exists at all: a hold or release tests
    them (with ``paused`` and, for a release, ``images``) instead of the whole resourceVersion.
    """

    name: str
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    labels: Mapping[str, str] = field(default_factory=empty_mapping)
    paused: bool = False
    held_by: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    held_by_value: str | None = None
    has_annotations: bool = True


@dataclass(frozen=True)
class WorkloadPod:
    """A pod of some workload, as the pod gate sees it (see :mod:`alembic_operator.core.admission`).

    ``owner`` is its controller (kind, name), e.g. ``("ReplicaSet", "web-5d9c7b")``; ``images``
    those of its containers (init containers excluded); ``gated`` whether it carries the
    operator's scheduling gate. ``name`` is empty in a CREATE request with ``generateName``.
    """

    namespace: str
    name: str = ""
    uid: str = ""
    resource_version: str = ""
    labels: Mapping[str, str] = field(default_factory=empty_mapping)
    images: tuple[str, ...] = ()
    owner: tuple[str, str] | None = None
    gated: bool = False
    bound: bool = False  # spec.nodeName is set
    held_by: tuple[str, ...] = ()  # the held-by annotation the webhook wrote


@dataclass(frozen=True)
class DeploymentQuery:
    """The Deployments to look up: by name, and those matching a label selector."""

    names: tuple[str, ...] = ()
    selector: LabelSelector | None = None


@dataclass(frozen=True)
class ObservationPlan:
    """What to look at: the core asks, the adapter fetches (so reads stay minimal)."""

    job_names: tuple[str, ...] = ()
    check_secret: bool = False
    deployments: DeploymentQuery | None = None


@dataclass(frozen=True)
class Observation:
    """Jobs found by name (absent names were not found), and the Secret's state if checked."""

    jobs: tuple[ObservedJob, ...] = ()
    secret: SecretState | None = None
    deployments: tuple[ObservedDeployment, ...] = ()

    def job(self, name: str | None) -> ObservedJob | None:
        return next((j for j in self.jobs if j.name == name), None) if name else None
