"""The gate at admission: Deployments are paused in the request, pods get a scheduling gate.

The rule is :func:`alembic_operator.core.gates.verdict`: a workload may run a new version only
when its migration has ``Succeeded`` for the current generation and, where the migration has an
``image``, for the image the workload moves to. The operator's mutating webhook applies it:

- Deployments (CREATE/UPDATE): :func:`admission_hold` pauses a gated Deployment whose template
  moves to a version not yet migrated and marks it held-by; :func:`resume_refusal` refuses a
  resume (``spec.paused`` true -> false by anyone but the operator) while a holder still holds.
- Pods (CREATE): :func:`gate_pod` gives every pod of a gated workload whose version is not yet
  migrated the scheduling gate :data:`POD_GATE` (and the held-by annotation);
  :func:`may_ungate` says when the operator may take it off again. This is decided from the pod
  alone (namespace, labels, owner, images), so it works for every workload kind.

A pod is gated by a migration that declares it -- ``spec.gate.deployments`` (through the pod's
ReplicaSet and ``pod-template-hash``) or ``spec.gate.selector`` (matched against the pod's
labels) -- or that the pod declares with the label :data:`GATE_LABEL` (from its workload's pod
template). The label holds even before its migration exists; a migration with
``spec.gate.mode: none`` gates nothing, whichever side declares it. A pod running the image the
migration last succeeded for is never gated: the old version keeps serving while a new one
waits. The operator's own migration pods are never gated. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from alembic_operator.core.gates import is_active, selector_matches, selects, verdict
from alembic_operator.core.images import parse_image, same_version
from alembic_operator.core.jobs import LABEL_MIGRATION, LABEL_MIGRATION_UID
from alembic_operator.model.migrations import Migration
from alembic_operator.model.observations import ObservedDeployment, WorkloadPod
from alembic_operator.model.spec import GROUP, GateMode
from alembic_operator.model.status import Phase

POD_GATE = f"{GROUP}/migration"  # the scheduling gate's name
GATE_LABEL = LABEL_MIGRATION  # a workload's pod-template label naming its migration
TEMPLATE_HASH_LABEL = "pod-template-hash"  # set by the Deployment controller on its pods


# --- Deployments -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AdmissionHold:
    """What the webhook adds to a Deployment request: ``spec.paused`` and the holders."""

    held_by: tuple[str, ...]
    message: str


def admission_hold(
    migrations: Iterable[Migration], deployment: ObservedDeployment, *, template_changed: bool
) -> AdmissionHold | None:
    """The rule inside a CREATE/UPDATE: hold a new template before any pod of it starts.

    Only requests that create a Deployment or change its pod template are considered (the
    operator's own pause/unpause patches change neither); ``None`` leaves the request untouched.
    """
    if not template_changed:
        return None
    if deployment.paused and not deployment.held_by:
        return None  # paused by a person (or the manifest): never ours to hold or release
    holders: list[str] = []
    messages: list[str] = []
    for m in sorted(migrations, key=lambda m: m.ref.name):
        if not is_active(m.spec.gate) or not selects(
            m.spec.gate, deployment.name, deployment.labels
        ):
            continue
        v = verdict(m, m.status, deployment.images)
        if v.hold:
            holders.append(m.ref.name)
            messages.append(v.message)
    if not holders:
        return None
    names = tuple(dict.fromkeys((*deployment.held_by, *holders)))
    if deployment.paused and names == deployment.held_by:
        return None
    return AdmissionHold(held_by=names, message="; ".join(messages))


def resume_refusal(
    migrations: Mapping[str, Migration], old: ObservedDeployment, new: ObservedDeployment
) -> str | None:
    """Why a resume of a held Deployment is refused (``None``: not a resume, or nothing holds).

    A resume is ``spec.paused`` going from true to false on a Deployment marked held-by; the
    caller exempts the operator's own requests. A holder that no longer exists, or whose rule
    now allows the Deployment's images, does not hold (the operator releases it anyway).
    """
    if not (old.paused and old.held_by and not new.paused):
        return None
    waiting = []
    for name in old.held_by:
        m = migrations.get(name)
        if m is not None and verdict(m, m.status, new.images).hold:
            waiting.append(waits_for(m, new.images))
    if not waiting:
        return None
    return (
        f"Deployment {new.name} is held by the migration gate: "
        + "; ".join(waiting)
        + ". It is released automatically when the migration succeeds; to take the gate off in "
        "an emergency, set spec.gate.mode: none on the DatabaseMigration (docs/gating.md)"
    )


def waits_for(migration: Migration, images: Sequence[str]) -> str:
    """'held by DatabaseMigration ns/name until it has Succeeded for image X (now: Running)'."""
    ref, status = migration.ref, migration.status
    target = ""
    if migration.spec.image:
        wanted = parse_image(migration.spec.image)
        moving = [i for i in images if parse_image(i).repository == wanted.repository]
        target = f" for image {moving[0] if moving else migration.spec.image}"
    if status.phase is None:
        now = "not started"
    elif status.observed_generation != ref.generation:
        now = f"{status.phase.value} for generation {status.observed_generation}"
    elif status.phase is Phase.SUCCEEDED:
        last = status.last_succeeded.image if status.last_succeeded else None
        now = f"Succeeded for {last}" if last else "Succeeded"
    else:
        now = status.phase.value
    who = f"DatabaseMigration {ref.namespace}/{ref.name}"
    return f"held by {who} until it has Succeeded{target} (now: {now})"


# --- pods --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodHold:
    """One migration holding a pod, and why."""

    migration: str
    message: str


@dataclass(frozen=True)
class PodGate:
    """What the webhook adds to a pod CREATE: the scheduling gate and the holders."""

    held_by: tuple[str, ...]
    message: str


def deployment_of(pod: WorkloadPod) -> str | None:
    """The Deployment a pod belongs to: its ReplicaSet's name minus ``-<pod-template-hash>``."""
    if pod.owner is None or pod.owner[0] != "ReplicaSet":
        return None
    suffix = f"-{pod.labels.get(TEMPLATE_HASH_LABEL, '')}"
    name = pod.owner[1]
    if len(suffix) > 1 and name.endswith(suffix):
        return name[: -len(suffix)]
    return None


def _declared_by_migration(migration: Migration, pod: WorkloadPod) -> bool:
    gate = migration.spec.gate
    if gate is None or not is_active(gate):
        return False
    deployment = deployment_of(pod)
    if deployment is not None and deployment in gate.deployments:
        return True
    return gate.selector is not None and selector_matches(gate.selector, pod.labels)


def _already_migrated(migration: Migration, images: Sequence[str]) -> bool:
    """Whether the pod runs the image the migration last succeeded for (the old version)."""
    last = migration.status.last_succeeded.image if migration.status.last_succeeded else None
    if not migration.spec.image or not last:
        return False
    succeeded = parse_image(last)
    return any(
        (i := parse_image(image)).repository == succeeded.repository and same_version(i, succeeded)
        for image in images
    )


def pod_holds(pod: WorkloadPod, migrations: Mapping[str, Migration]) -> tuple[PodHold, ...]:
    """Every migration that gates ``pod`` and does not allow its images yet (name order)."""
    if LABEL_MIGRATION_UID in pod.labels:
        return ()  # the operator's own migration pods
    declared = pod.labels.get(GATE_LABEL) or None
    holds: list[PodHold] = []
    if declared is not None and declared not in migrations:
        holds.append(
            PodHold(
                declared,
                f"held by DatabaseMigration {pod.namespace}/{declared} (named by the pod's "
                f"{GATE_LABEL} label), which does not exist yet",
            )
        )
    for name in sorted(migrations):
        m = migrations[name]
        by_label = name == declared and (m.spec.gate is None or m.spec.gate.mode is GateMode.PAUSE)
        if not (by_label or _declared_by_migration(m, pod)):
            continue
        if verdict(m, m.status, pod.images, what="pod").hold and not _already_migrated(
            m, pod.images
        ):
            holds.append(PodHold(name, waits_for(m, pod.images)))
    return tuple(sorted(holds, key=lambda h: h.migration))


# Workloads a migration can gate only by ``spec.gate.selector`` and that no other request holds
# (a Deployment is paused in its own request, before its ReplicaSet exists).
SELECTOR_ONLY_OWNERS = frozenset({"StatefulSet", "DaemonSet", "Job"})


def is_read_before_admitting(pod: WorkloadPod) -> bool:
    """Whether a pod the index lets through must be decided again on a fresh read.

    A pod of a StatefulSet, DaemonSet or Job (a CronJob's too) can be gated by a migration's
    selector alone; such a migration created a moment earlier may not have reached the watch.
    Pods declaring their migration with the label are held without a read (an unknown name
    holds), and the migration Jobs' own pods are never gated.
    """
    return (
        not pod.gated
        and LABEL_MIGRATION_UID not in pod.labels
        and GATE_LABEL not in pod.labels
        and pod.owner is not None
        and pod.owner[0] in SELECTOR_ONLY_OWNERS
    )


def gate_pod(pod: WorkloadPod, migrations: Mapping[str, Migration]) -> PodGate | None:
    """The rule inside a pod CREATE: ``None`` admits it as it is."""
    if pod.gated:
        return None  # gated already (e.g. by its manifest): the operator still takes it off
    holds = pod_holds(pod, migrations)
    if not holds:
        return None
    return PodGate(
        held_by=tuple(h.migration for h in holds), message="; ".join(h.message for h in holds)
    )


def may_ungate(
    pod: WorkloadPod,
    migrations: Mapping[str, Migration],
    *,
    held_by: Sequence[str],
    gone: Iterable[str] = (),
) -> bool:
    """Whether the operator may remove its scheduling gate from ``pod`` now.

    ``held_by`` are the holders recorded at admission: each must be known (in ``migrations``)
    or confirmed deleted (``gone``) -- a migration not seen yet (e.g. right after the operator
    started) keeps the pod gated -- and nothing may hold it now. A pod whose label names a
    migration that does not exist stays gated until that migration succeeds.
    """
    if not pod.gated or pod.bound:
        return False
    deleted = set(gone)
    if any(name not in migrations and name not in deleted for name in held_by):
        return False
    return not pod_holds(pod, migrations)
