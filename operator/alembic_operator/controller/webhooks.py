"""The mutating admission webhook: the gate's rule inside Deployment and pod requests.

- ``/gate-deployments`` (Deployment CREATE/UPDATE): a request that creates a gated Deployment
  or changes its pod template to a version not yet migrated gets ``spec.paused: true`` and the
  held-by annotation in the request itself; a resume (``spec.paused`` true -> false) of a held
  Deployment by anyone but the operator is refused with a message naming the migration and
  what it waits for (:func:`~alembic_operator.core.admission.admission_hold`,
  :func:`~alembic_operator.core.admission.resume_refusal`).
- ``/gate-pods`` (pod CREATE): a pod of a gated workload whose version is not yet migrated gets
  the scheduling gate ``alembic-operator.dev/migration`` and the held-by annotation
  (:func:`~alembic_operator.core.admission.gate_pod`); the operator removes the gate once the
  migration succeeded (:mod:`alembic_operator.controller.podgates`). This holds every workload
  kind, first installs and either apply order.

The migrations come from the reconciler's
:class:`~alembic_operator.controller.indexes.GateIndex` (its public API only), fed by the watch.
That suffices to hold, never to admit: before a Deployment request with a new template (or a
resume of a held one) is let through, the namespace's migrations are read from the API server
(:func:`read_migrations`, a consistent LIST shared in bursts by
:class:`~alembic_operator.controller.admissionreads.MigrationReads`), so a migration created a
moment ago, or before this replica's first list, still holds it; a failed read refuses the
request. Pods are decided from the index alone (docs/gating.md says what that leaves open). The
operator's own requests are recognised by the username of its ServiceAccount token.

Serving (the server, its TLS, on every replica): :mod:`alembic_operator.controller.serving`.
See docs/gating.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from alembic_operator.controller.admissionreads import MigrationReads
from alembic_operator.controller.observers import parse_deployment, parse_workload_pod
from alembic_operator.controller.serving import WEBHOOK_CERT_DIR_ENV, WEBHOOK_PORT_ENV
from alembic_operator.core.admission import (
    POD_GATE,
    admission_hold,
    gate_pod,
    is_read_before_admitting,
    resume_refusal,
)
from alembic_operator.core.gates import HELD_BY_ANNOTATION, format_held_by
from alembic_operator.errors import ApiError
from alembic_operator.model.migrations import Migration, parse_migration
from alembic_operator.model.observations import ObservedDeployment
from alembic_operator.model.spec import InvalidMigration

# The serving variables stay importable from here (the server lives in serving.py).
__all__ = ["WEBHOOK_CERT_DIR_ENV", "WEBHOOK_ID", "WEBHOOK_PORT_ENV", "gate_deployment"]
log = logging.getLogger("alembic_operator.webhook")

WEBHOOK_ID = "gate-deployments"
POD_WEBHOOK_ID = "gate-pods"


def _template(obj: Mapping[str, Any] | None) -> Any:
    return ((obj or {}).get("spec") or {}).get("template")


@kopf.on.mutate("apps", "v1", "deployments", operations=["CREATE", "UPDATE"], id=WEBHOOK_ID)
async def gate_deployment(
    *,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: Any,
    warnings: list[str],
    dryrun: bool,
    **kwargs: Any,
) -> None:
    """Hold the request's Deployment (paused + held-by) when its migration says so."""
    raw: Mapping[str, Any] = body
    namespace = str((raw.get("metadata") or {}).get("namespace") or "")
    deployment = parse_deployment(raw)
    old: Mapping[str, Any] | None = kwargs.get("old")
    changed = kwargs.get("operation") == "CREATE" or _template(raw) != _template(old)
    reconciler = memo.get("reconciler")
    if reconciler is None:
        return  # not started yet: the reconcile holds it from the watch event
    index = reconciler.index
    hold = admission_hold(
        index.gating(namespace, deployment.name, deployment.labels), deployment,
        template_changed=changed,
    )  # fmt: skip
    if hold is None and changed:
        # The index holds: trust it. It cannot vouch for an admit: its watch may not have
        # delivered a migration created (or changed) a moment ago. Ask the API server.
        current = await read_migrations(memo, namespace)
        hold = admission_hold(current.values(), deployment, template_changed=True)
    if hold is None:
        if old is not None and not _is_operator(memo, kwargs.get("userinfo")):
            await _refuse_resume(memo, namespace, old=old, new=deployment)
        return
    patch.spec["paused"] = True
    patch.metadata.annotations[HELD_BY_ANNOTATION] = format_held_by(hold.held_by)
    warnings.append(f"rollout held by alembic-operator: {hold.message}")
    if not dryrun:
        log.info("webhook holds Deployment %s/%s: %s", namespace, deployment.name, hold.message)


async def _refuse_resume(
    memo: Any, namespace: str, *, old: Mapping[str, Any], new: ObservedDeployment
) -> None:
    """Refuse a resume of a held Deployment (:func:`resume_refusal`), index first, then the API.

    A holder this replica's index does not know (e.g. it has just started) is read from the
    API server before the resume is let through.
    """
    previous = parse_deployment(old)
    refusal = resume_refusal(memo["reconciler"].index.migrations(namespace), previous, new)
    if refusal is None and previous.paused and previous.held_by and not new.paused:
        refusal = resume_refusal(await read_migrations(memo, namespace), previous, new)
    if refusal is not None:
        log.info("refused a resume of Deployment %s/%s", namespace, new.name)
        raise kopf.AdmissionError(refusal, code=403)


async def read_migrations(memo: Any, namespace: str) -> dict[str, Migration]:
    """The namespace's migrations from the API server now, or the request is refused.

    Refusing (not admitting) when the read fails keeps the gate's promise the way
    ``failurePolicy: Fail`` does: the client gets an error and retries; nothing new starts.
    """
    reads: MigrationReads = memo["migration_reads"]  # made at start-up (handlers.py)
    started = time.monotonic()
    try:
        bodies = await reads.read(namespace)
    except ApiError as exc:
        log.warning("refused a request in %s: %s", namespace, exc)
        raise kopf.AdmissionError(
            f"alembic-operator could not read the DatabaseMigrations of {namespace} to decide "
            f"whether this rollout must wait ({exc}); retry, or see docs/gating.md",
            code=503,
        ) from None
    log.debug("read %d migration(s) of %s in %.1f ms", len(bodies), namespace,
              (time.monotonic() - started) * 1000)  # fmt: skip
    migrations = {}
    for item in bodies:
        try:
            migration = parse_migration(item)
        except InvalidMigration:
            continue  # the reconciler reports it; it gates nothing it could be held by
        migrations[migration.ref.name] = migration
    return migrations


def _is_operator(memo: Any, userinfo: Mapping[str, Any] | None) -> bool:
    username = memo.get("username")
    return bool(username) and (userinfo or {}).get("username") == username


@kopf.on.mutate("v1", "pods", operations=["CREATE"], id=POD_WEBHOOK_ID)
async def gate_pod_request(
    *,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: Any,
    warnings: list[str],
    dryrun: bool,
    **kwargs: Any,
) -> None:
    """Give a new pod of a gated workload the scheduling gate while its version waits."""
    raw: Mapping[str, Any] = body
    pod = parse_workload_pod(raw)  # the apiserver fills in the request's namespace
    reconciler = memo.get("reconciler")
    if reconciler is None:
        return
    gate = gate_pod(pod, reconciler.index.migrations(pod.namespace))
    if gate is None and is_read_before_admitting(pod):
        # A StatefulSet's, DaemonSet's or Job's pod: its migration may gate it by selector
        # alone and may be newer than the watch (as for Deployments, gate_deployment).
        gate = gate_pod(pod, await read_migrations(memo, pod.namespace))
    if gate is None:
        return
    gates = list(((raw.get("spec") or {}).get("schedulingGates")) or ())
    patch.spec["schedulingGates"] = [*gates, {"name": POD_GATE}]
    patch.metadata.annotations[HELD_BY_ANNOTATION] = format_held_by(gate.held_by)
    warnings.append(f"pod gated by alembic-operator: {gate.message}")
    if not dryrun:
        log.info("webhook gates a pod of %s/%s: %s", pod.namespace, pod.owner, gate.message)
