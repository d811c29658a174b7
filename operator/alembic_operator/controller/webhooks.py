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
:class:`~alembic_operator.controller.indexes.GateIndex` (no API call in the request path). The
operator's own requests are recognised by the username of its ServiceAccount token.

Serving: ``alembic-operator run --webhook-port 9443 [--webhook-cert-dir DIR]`` (or the
environment variables below). ``DIR`` holds ``tls.crt`` and ``tls.key`` (a cert-manager
Certificate's Secret mounted as a volume); without it kopf generates a self-signed certificate
(that needs the ``certbuilder`` package). See docs/gating.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import kopf

from alembic_operator.controller.observers import parse_deployment, parse_workload_pod
from alembic_operator.core.admission import POD_GATE, admission_hold, gate_pod, resume_refusal
from alembic_operator.core.gates import HELD_BY_ANNOTATION, format_held_by

log = logging.getLogger("alembic_operator.webhook")

WEBHOOK_PORT_ENV = "ALEMBIC_OPERATOR_WEBHOOK_PORT"
WEBHOOK_CERT_DIR_ENV = "ALEMBIC_OPERATOR_WEBHOOK_CERT_DIR"
WEBHOOK_ADDR_ENV = "ALEMBIC_OPERATOR_WEBHOOK_ADDR"
WEBHOOK_ID = "gate-deployments"
POD_WEBHOOK_ID = "gate-pods"


def server_from_env(environ: Mapping[str, str] | None = None) -> kopf.WebhookServer | None:
    """The webhook server the environment asks for, or ``None`` when the webhook is off."""
    env = os.environ if environ is None else environ
    port = env.get(WEBHOOK_PORT_ENV, "").strip()
    if not port:
        return None
    addr = env.get(WEBHOOK_ADDR_ENV) or "0.0.0.0"  # noqa: S104 - the apiserver calls in
    cert_dir = env.get(WEBHOOK_CERT_DIR_ENV, "").strip()
    if cert_dir:
        certfile, pkeyfile = Path(cert_dir) / "tls.crt", Path(cert_dir) / "tls.key"
        return kopf.WebhookServer(addr=addr, port=int(port), certfile=certfile, pkeyfile=pkeyfile)
    return kopf.WebhookServer(addr=addr, port=int(port))  # kopf's self-signed certificate


async def no_server(_fn: Any) -> AsyncIterator[Any]:
    """The webhook is off: serve nothing until the operator stops.

    kopf refuses admission handlers without a server, and stops when the server ends.
    """
    await asyncio.Event().wait()
    yield None  # pragma: no cover - never reached


def configure(settings: kopf.OperatorSettings, environ: Mapping[str, str] | None = None) -> None:
    server = server_from_env(environ)
    if server is None:
        settings.admission.server = no_server
        return
    settings.admission.server = server
    log.info("admission webhook listening on port %s", server.port)


def _template(obj: Mapping[str, Any] | None) -> Any:
    return ((obj or {}).get("spec") or {}).get("template")


@kopf.on.mutate("apps", "v1", "deployments", operations=["CREATE", "UPDATE"], id=WEBHOOK_ID)
def gate_deployment(
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
    migrations = reconciler.index.gating(namespace, deployment.name, deployment.labels)
    hold = admission_hold(migrations, deployment, template_changed=changed)
    if hold is None:
        if old is not None and not _is_operator(memo, kwargs.get("userinfo")):
            refusal = resume_refusal(
                reconciler.index.migrations(namespace), parse_deployment(old), deployment
            )
            if refusal is not None:
                log.info("refused a resume of Deployment %s/%s", namespace, deployment.name)
                raise kopf.AdmissionError(refusal, code=403)
        return
    patch.spec["paused"] = True
    patch.metadata.annotations[HELD_BY_ANNOTATION] = format_held_by(hold.held_by)
    warnings.append(f"rollout held by alembic-operator: {hold.message}")
    if not dryrun:
        log.info("webhook holds Deployment %s/%s: %s", namespace, deployment.name, hold.message)


def _is_operator(memo: Any, userinfo: Mapping[str, Any] | None) -> bool:
    username = memo.get("username")
    return bool(username) and (userinfo or {}).get("username") == username


@kopf.on.mutate("v1", "pods", operations=["CREATE"], id=POD_WEBHOOK_ID)
def gate_pod_request(
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
    if gate is None:
        return
    gates = list(((raw.get("spec") or {}).get("schedulingGates")) or ())
    patch.spec["schedulingGates"] = [*gates, {"name": POD_GATE}]
    patch.metadata.annotations[HELD_BY_ANNOTATION] = format_held_by(gate.held_by)
    warnings.append(f"pod gated by alembic-operator: {gate.message}")
    if not dryrun:
        log.info("webhook gates a pod of %s/%s: %s", pod.namespace, pod.owner, gate.message)
