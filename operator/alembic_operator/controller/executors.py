"""Executing a :class:`Decision`: Job changes and holds, the status patch, releases, Events.

The order is the point: a Job is created before the status names it (a crash in between is
healed by adoption), a Deployment is held before the status says so and released only after
the status that allows it was written, and Events are posted only after the status they report
was written, so retried reconciles never report an outcome twice. Every message is redacted on
its way out.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

from alembic_operator.controller import metrics
from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.core.gates import HELD_BY_ANNOTATION, format_held_by
from alembic_operator.errors import AlreadyExists, Conflict, JobConflict
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
from alembic_operator.model.spec import API_VERSION, KIND
from alembic_operator.model.status import MigrationStatus, status_to_patch
from alembic_operator.redaction import Redactor

log = logging.getLogger("alembic_operator.controller")
_REDACTOR = Redactor()


async def execute(
    api: KubeApi,
    decision: Decision,
    *,
    ref: MigrationRef,
    previous: MigrationStatus,
    resource_version: str,
) -> tuple[str | None, MigrationStatus]:
    """Perform ``decision``; raises :class:`~alembic_operator.errors.Conflict` on a stale status.

    Returns the resourceVersion the status patch produced (``None`` when nothing was written)
    and the status as written: a Job created here gets its uid in ``status.job``.

    A hold whose Deployment changed meanwhile (409) does not stop the rest: the Job created
    above must be recorded in this status write, or the retry would find it unrecorded and
    report it adopted. The Conflict is raised after the write, so the reconcile looks again.
    """
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
    stale: list[str] = []
    for hold in decision.holds:
        try:
            await _hold(api, hold, namespace=ref.namespace, migration=ref.name)
        except Conflict:
            stale.append(hold.name)
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
    for release in decision.releases:
        await _release(api, release, namespace=ref.namespace, migration=ref.name)
    involved = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "namespace": ref.namespace,
        "name": ref.name,
        "uid": ref.uid,
    }
    for event in decision.events:
        await _post(api, event, namespace=ref.namespace, migration=involved)
    if stale:
        raise Conflict(f"Deployment(s) {', '.join(stale)} changed while being held")
    return (str(stored_version) if stored_version is not None else None), status


async def execute_releases(
    api: KubeApi, actions: tuple[Action, ...], *, namespace: str, migration: str
) -> None:
    """Releases and Deployment Events without a migration (it was deleted): see gates."""
    for action in actions:
        if isinstance(action, ReleaseDeployment):
            await _release(api, action, namespace=namespace, migration=migration)
    for action in actions:
        if isinstance(action, PostEvent) and action.deployment is not None:
            await _post(api, action, namespace=namespace, migration=None)


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
    resource_version: str, held_by: tuple[str, ...], paused: bool | None
) -> dict[str, Any]:
    """The Deployment merge patch of a hold or release (``paused`` None: leave it as it is)."""
    body: dict[str, Any] = {
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": {HELD_BY_ANNOTATION: format_held_by(held_by)},
        },
    }
    if paused is not None:
        body["spec"] = {"paused": paused}
    return body


async def _hold(api: KubeApi, action: HoldDeployment, *, namespace: str, migration: str) -> None:
    body = _gate_patch(action.resource_version, action.held_by, True if action.pause else None)
    await api.patch_deployment(namespace, action.name, body)
    log.info("holding Deployment %s/%s for %s", namespace, action.name, migration)
    metrics.active().deployment_held(namespace, migration, action.name)


async def _release(
    api: KubeApi, action: ReleaseDeployment, *, namespace: str, migration: str
) -> None:
    body = _gate_patch(action.resource_version, action.held_by, False if action.unpause else None)
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
