"""Executing a :class:`Decision`: Job changes, then the status patch, then the Events.

The order is the point: a Job is created before the status names it (a crash in between is
healed by adoption), and Events are posted only after the status they report was written, so
retried reconciles never report an outcome twice. Every message is redacted on its way out.
"""

from __future__ import annotations

import logging
from typing import Any

from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.errors import AlreadyExists, JobConflict
from alembic_operator.model.actions import CreateJob, Decision, DeleteJob
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
) -> None:
    """Perform ``decision``; raises :class:`~alembic_operator.errors.Conflict` on a stale status."""
    for change in decision.changes:
        if isinstance(change, CreateJob):
            await _create_job(api, change, ref=ref)
        elif isinstance(change, DeleteJob):
            await api.delete_job(ref.namespace, change.name)
    patch = status_to_patch(decision.status)
    if patch != status_to_patch(previous):
        await api.patch_migration_status(
            ref.namespace, ref.name, status=_redacted(patch), resource_version=resource_version
        )
    involved = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "namespace": ref.namespace,
        "name": ref.name,
        "uid": ref.uid,
    }
    for event in decision.events:
        await api.post_event(
            involved,
            reason=event.reason.value,
            message=_REDACTOR.redact(event.message),
            warning=event.warning,
        )


async def _create_job(api: KubeApi, action: CreateJob, *, ref: MigrationRef) -> None:
    try:
        await api.create_job(ref.namespace, action.manifest)
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


def _redacted(patch: dict[str, Any]) -> dict[str, Any]:
    for key in ("message", "logTail"):
        if isinstance(patch.get(key), str):
            patch[key] = _REDACTOR.redact(patch[key])
    for condition in patch.get("conditions") or ():
        condition["message"] = _REDACTOR.redact(condition.get("message", ""))
    return patch
