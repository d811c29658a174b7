"""The optional mutating admission webhook: the gate's rule inside Deployment CREATE/UPDATE.

When a request creates a Deployment or changes its pod template while a migration gating it
has not succeeded for it, the webhook adds ``spec.paused: true`` and the held-by annotation to
the request itself, so not even a surge pod of the new version starts. The rule is
:func:`alembic_operator.core.gates.admission_hold`; the migrations come from the reconciler's
:class:`~alembic_operator.controller.indexes.GateIndex` (no API call in the request path). The
pause/resume reconcile stays the safety net: with the webhook off, unreachable or failing open
(``failurePolicy: Ignore``), the operator pauses the Deployment from its watch event.

Serving (the server, its TLS, on every replica): :mod:`alembic_operator.controller.serving`.
See docs/gating.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from alembic_operator.controller.observers import parse_deployment
from alembic_operator.controller.serving import WEBHOOK_CERT_DIR_ENV, WEBHOOK_PORT_ENV
from alembic_operator.core.gates import HELD_BY_ANNOTATION, admission_hold, format_held_by

# The serving variables stay importable from here (the server lives in serving.py).
__all__ = ["WEBHOOK_CERT_DIR_ENV", "WEBHOOK_ID", "WEBHOOK_PORT_ENV", "gate_deployment"]
log = logging.getLogger("alembic_operator.webhook")

WEBHOOK_ID = "gate-deployments"


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
