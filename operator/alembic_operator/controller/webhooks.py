"""The optional mutating admission webhook: the gate's rule inside Deployment CREATE/UPDATE.

When a request creates a Deployment or changes its pod template while a migration gating it
has not succeeded for it, the webhook adds ``spec.paused: true`` and the held-by annotation to
the request itself, so not even a surge pod of the new version starts. The rule is
:func:`alembic_operator.core.gates.admission_hold`; the migrations come from the reconciler's
:class:`~alembic_operator.controller.indexes.GateIndex` (no API call in the request path). The
pause/resume reconcile stays the safety net: with the webhook off, unreachable or failing open
(``failurePolicy: Ignore``), the operator pauses the Deployment from its watch event.

Serving: ``alembic-operator run --webhook-port 9443 [--webhook-cert-dir DIR]`` (or the
environment variables below). ``DIR`` holds ``tls.crt`` and ``tls.key`` (a cert-manager
Certificate's Secret mounted as a volume); without it kopf generates a self-signed certificate
(that needs the ``certbuilder`` package). Off by default. See docs/gating.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import kopf

from alembic_operator.controller.observers import parse_deployment
from alembic_operator.core.admission import admission_hold
from alembic_operator.core.gates import HELD_BY_ANNOTATION, format_held_by

log = logging.getLogger("alembic_operator.webhook")

WEBHOOK_PORT_ENV = "ALEMBIC_OPERATOR_WEBHOOK_PORT"
WEBHOOK_CERT_DIR_ENV = "ALEMBIC_OPERATOR_WEBHOOK_CERT_DIR"
WEBHOOK_ADDR_ENV = "ALEMBIC_OPERATOR_WEBHOOK_ADDR"
WEBHOOK_ID = "gate-deployments"


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
        return
    patch.spec["paused"] = True
    patch.metadata.annotations[HELD_BY_ANNOTATION] = format_held_by(hold.held_by)
    warnings.append(f"rollout held by alembic-operator: {hold.message}")
    if not dryrun:
        log.info("webhook holds Deployment %s/%s: %s", namespace, deployment.name, hold.message)
