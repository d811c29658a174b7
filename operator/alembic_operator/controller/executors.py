"""Executing a :class:`Decision`: Job changes and holds, the status patch, releases, Events.

The order is the point: a Job is created before the status names it (a crash in between is
healed by adoption), a Deployment is held before the status says so and released only after
the status that allows it was written, and Events are posted only after the status they report
was written, so retried reconciles never report an outcome twice. Once the status is written,
its Events are owed: a hold or release that fails (a Deployment changed meanwhile, 409) does not
stop them, since the retry starts from the stored status and would never post them again; only
the Event of a release that did not happen waits for the retry that releases. Holds and releases
are JSON patches that test what they were decided on (the held-by annotation, ``spec.paused``,
for a release the images), not the whole resourceVersion: the Deployment controller's status
writes and scaling (an HPA) change that all the time and would cost a 409 and a full retry.
Every message is redacted on its way out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from alembic_operator.controller import metrics
from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.core.gates import HELD_BY_ANNOTATION, format_held_by
from alembic_operator.errors import AlreadyExists, ApiError, JobConflict
from alembic_operator.model.actions import (
    Action,
    CreateConfigMap,
    CreateJob,
    Decision,
    DeleteJob,
    HoldDeployment,
    PostEvent,
    ReleaseDeployment,
)
from alembic_operator.model.migrations import MigrationRef
from alembic_operator.model.observations import ObservedDeployment
from alembic_operator.model.reasons import Reason
from alembic_operator.model.spec import API_VERSION, KIND
from alembic_operator.model.status import MigrationStatus, status_to_patch
from alembic_operator.redaction import Redactor

log = logging.getLogger("alembic_operator.controller")
_REDACTOR = Redactor()


@dataclass(frozen=True)
class Executed:
    """What :func:`execute` did: the status written, and a hold or release that failed.

    ``version`` is the resourceVersion the status patch produced (``None``: nothing written);
    ``failure`` the first hold or release error, for the caller to raise (or, for a
    :class:`~alembic_operator.errors.Conflict`, to look again) once it has recorded the status.
    """

    version: str | None
    status: MigrationStatus
    failure: ApiError | None = None


async def execute(
    api: KubeApi,
    decision: Decision,
    *,
    ref: MigrationRef,
    previous: MigrationStatus,
    resource_version: str,
) -> Executed:
    """Perform ``decision``; raises :class:`~alembic_operator.errors.Conflict` on a stale status.

    A Job created here gets its uid in ``status.job``. A failed hold does not stop the rest: the
    Job created above must be recorded in this status write, or the retry would find it
    unrecorded and report it adopted. A failed release does not stop the Events.
    """
    status = await _change(api, decision, ref=ref)
    failures: list[ApiError] = []
    for hold in decision.holds:
        try:
            await _hold(api, hold, namespace=ref.namespace, migration=ref.name)
        except ApiError as exc:
            failures.append(exc)
    patch = status_to_patch(status)
    written = patch != status_to_patch(previous)
    stored_version = None
    if written:
        stored = await api.patch_migration_status(
            ref.namespace, ref.name, status=_redacted(patch), resource_version=resource_version
        )
        stored_version = (stored.get("metadata") or {}).get("resourceVersion")
    # Only now is the status stored: outcomes are counted from this transition, exactly once.
    metrics.active().status_persisted(
        ref.namespace,
        ref.name,
        uid=ref.uid,
        previous=previous,
        current=status,
        written=written,
    )
    unreleased = await _release_all(
        api, decision.releases, namespace=ref.namespace, migration=ref.name, failures=failures
    )
    involved = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "namespace": ref.namespace,
        "name": ref.name,
        "uid": ref.uid,
    }
    for event in _owed(decision.events, unreleased):
        await _post(api, event, namespace=ref.namespace, migration=involved)
    version = str(stored_version) if stored_version is not None else None
    return Executed(version, status, failures[0] if failures else None)


async def _change(api: KubeApi, decision: Decision, *, ref: MigrationRef) -> MigrationStatus:
    """The Job and ConfigMap changes; the status to write (a created Job's uid in it)."""
    status = decision.status
    for change in decision.changes:
        if isinstance(change, CreateJob):
            uid = await _create_job(api, change, ref=ref)
            job = status.job
            if job is not None and job.name == change.name and uid:
                status = replace(status, job=replace(job, uid=uid))
        elif isinstance(change, CreateConfigMap):
            # Its name carries the plan's hash: one that exists is the same plan, written already.
            with contextlib.suppress(AlreadyExists):
                await api.create_config_map(ref.namespace, change.manifest)
        elif isinstance(change, DeleteJob):
            await api.delete_job(ref.namespace, change.name)
    return status


async def execute_releases(
    api: KubeApi, actions: tuple[Action, ...], *, namespace: str, migration: str
) -> None:
    """Releases and Deployment Events without a migration (it was deleted): see gates."""
    failures: list[ApiError] = []
    releases = [a for a in actions if isinstance(a, ReleaseDeployment)]
    unreleased = await _release_all(
        api, releases, namespace=namespace, migration=migration, failures=failures
    )
    events = [a for a in actions if isinstance(a, PostEvent) and a.deployment is not None]
    for event in _owed(events, unreleased):
        await _post(api, event, namespace=namespace, migration=None)
    if failures:
        raise failures[0]


async def _release_all(
    api: KubeApi,
    releases: Sequence[ReleaseDeployment],
    *,
    namespace: str,
    migration: str,
    failures: list[ApiError],
) -> set[str]:
    """Perform every release; the names of those that failed (their errors go to ``failures``)."""
    unreleased = set()
    for release in releases:
        try:
            await _release(api, release, namespace=namespace, migration=migration)
        except ApiError as exc:
            unreleased.add(release.name)
            failures.append(exc)
    return unreleased


def _owed(events: Sequence[PostEvent], unreleased: set[str]) -> list[PostEvent]:
    """The Events to post now: a release that failed is decided (and announced) again."""
    return [
        e
        for e in events
        if not (
            e.reason is Reason.ROLLOUT_RELEASED
            and e.deployment is not None
            and e.deployment.name in unreleased
        )
    ]


async def _post(
    api: KubeApi, event: PostEvent, *, namespace: str, migration: dict[str, str] | None
) -> None:
    involved = migration
    if event.deployment is not None:
        involved = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "namespace": namespace,
            "name": event.deployment.name,
            "uid": event.deployment.uid,
        }
    assert involved is not None
    await api.post_event(
        involved,
        reason=event.reason.value,
        message=_REDACTOR.redact(event.message),
        warning=event.warning,
    )


def _gate_patch(
    seen: ObservedDeployment, held_by: Sequence[str], *, paused: bool | None, images: bool
) -> list[dict[str, Any]]:
    """The JSON patch of a hold or release (``paused`` None: leave it as it is).

    It tests what the decision read (the held-by annotation exactly as stored, ``spec.paused``
    and, with ``images``, each container's image), then writes: a Deployment where one of those
    changed is refused (422, a :class:`~alembic_operator.errors.Conflict`) and decided again.
    A JSON patch cannot add to an annotations map that does not exist, so then it tests that
    there is still none and creates it. ``paused: false`` and an absent annotation are ``null``.
    """
    annotation = f"/metadata/annotations/{_pointer(HELD_BY_ANNOTATION)}"
    value = format_held_by(held_by)
    operations: list[dict[str, Any]] = []
    if seen.has_annotations:
        operations.append({"op": "test", "path": annotation, "value": seen.held_by_value})
        if value is not None:
            operations.append({"op": "add", "path": annotation, "value": value})
        elif seen.held_by_value is not None:
            operations.append({"op": "remove", "path": annotation})
    else:
        operations.append({"op": "test", "path": "/metadata/annotations", "value": None})
        if value is not None:
            operations.append(
                {"op": "add", "path": "/metadata/annotations", "value": {HELD_BY_ANNOTATION: value}}
            )
    operations.append(
        {"op": "test", "path": "/spec/paused", "value": True if seen.paused else None}
    )
    if images:
        operations.extend(
            {"op": "test", "path": f"/spec/template/spec/containers/{i}/image", "value": image}
            for i, image in enumerate(seen.images)
        )
    if paused is not None:
        operations.append({"op": "add", "path": "/spec/paused", "value": paused})
    return operations


def _pointer(key: str) -> str:
    """``key`` as one JSON Pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


async def _hold(api: KubeApi, action: HoldDeployment, *, namespace: str, migration: str) -> None:
    paused = True if action.pause else None
    body = _gate_patch(action.seen, action.held_by, paused=paused, images=False)
    await api.patch_deployment(namespace, action.name, body)
    log.info("holding Deployment %s/%s for %s", namespace, action.name, migration)
    metrics.active().deployment_held(namespace, migration, action.name)


async def _release(
    api: KubeApi, action: ReleaseDeployment, *, namespace: str, migration: str
) -> None:
    paused = False if action.unpause else None
    body = _gate_patch(action.seen, action.held_by, paused=paused, images=True)
    await api.patch_deployment(namespace, action.name, body)
    log.info("released Deployment %s/%s from %s", namespace, action.name, migration)
    metrics.active().deployment_released(namespace, migration, action.name)


async def _create_job(api: KubeApi, action: CreateJob, *, ref: MigrationRef) -> str:
    """Create the Job (or find ours under its name); its uid."""
    try:
        created = await api.create_job(ref.namespace, action.manifest)
    except AlreadyExists:
        # A create that timed out may have succeeded: ours means adoption, not a second Job.
        existing = await api.get_job(ref.namespace, action.name)
        owners = [
            o.get("uid")
            for o in ((existing or {}).get("metadata") or {}).get("ownerReferences") or ()
        ]
        if ref.uid not in owners:
            raise JobConflict(f"Job {action.name} exists and is not owned by {ref.name}") from None
        log.info("Job %s/%s already existed with this owner: adopted", ref.namespace, action.name)
        return str(((existing or {}).get("metadata") or {}).get("uid") or "")
    return str((created.get("metadata") or {}).get("uid") or "")


def _redacted(patch: dict[str, Any]) -> dict[str, Any]:
    for key in ("message", "logTail"):
        if isinstance(patch.get(key), str):
            patch[key] = _REDACTOR.redact(patch[key])
    for condition in patch.get("conditions") or ():
        condition["message"] = _REDACTOR.redact(condition.get("message", ""))
    return patch
