"""The Kubernetes calls about the users' workloads, for the rollout gate: Deployments (read,
held and released by JSON patches that test what they were decided on) and the pods of gated
workloads (their scheduling gate removed).

A base of :class:`~alembic_operator.controller.kubeapi.KubeApi` (one adapter, split by subject to
stay small), over the same :class:`~alembic_operator.controller.transport.Transport`. Raw JSON in
and out; must not parse into typed values or decide anything. Every request names its RBAC verb
and a module-level :class:`Resource`: tests/delivery/test_rbac.py reads these calls too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alembic_operator.controller.transport import (
    JSON_PATCH,
    STRATEGIC_PATCH,
    Resource,
    Transport,
    selector_pairs,
)
from alembic_operator.errors import ApiError, Conflict, NotFound
from alembic_operator.model.spec import LabelSelector

PODS = Resource("", "v1", "pods", "Pod")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")


class WorkloadApi(Transport):
    """Deployments and gated pods."""

    # --- Deployments (the rollout gate) -----------------------------------------------------

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                await self._call(
                    "get", DEPLOYMENTS, namespace, name, what=f"get Deployment {namespace}/{name}"
                )
            )
        except NotFound:
            return None

    async def list_deployments(
        self, namespace: str, *, selector: LabelSelector | None = None
    ) -> list[dict[str, Any]]:
        """Deployments of ``namespace`` (matching ``selector`` when given)."""
        return list(
            await self._call(
                "list",
                DEPLOYMENTS,
                namespace,
                labels=selector_pairs(selector) if selector is not None else None,
                what=f"list Deployments in {namespace}",
            )
        )

    async def patch_deployment(
        self, namespace: str, name: str, operations: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """JSON patch (RFC 6902); a failed ``test`` operation raises :class:`Conflict`.

        The apiserver answers a patch it cannot apply (a ``test`` that found another value) with
        422 Invalid and no detail: the holds and releases that send these test what they were
        decided on, so for them a 422 means "changed meanwhile", like a stale resourceVersion.
        """
        try:
            return dict(
                await self._call(
                    "patch",
                    DEPLOYMENTS,
                    namespace,
                    name,
                    body=operations,
                    content_type=JSON_PATCH,
                    what=f"patch Deployment {namespace}/{name}",
                )
            )
        except ApiError as exc:
            if exc.status == 422:
                raise Conflict(
                    f"{exc} (changed meanwhile)", status=422, reason=exc.reason
                ) from None
            raise

    # --- pods of gated workloads (the pod gate) ---------------------------------------------

    async def ungate_pod(
        self, namespace: str, name: str, *, gate: str, annotation: str
    ) -> dict[str, Any]:
        """Remove the scheduling gate ``gate`` and the ``annotation`` from a pod.

        A strategic merge patch deletes only this gate from ``spec.schedulingGates`` (others,
        e.g. another controller's, stay) and needs no resourceVersion.
        """
        body = {
            "metadata": {"annotations": {annotation: None}},
            "spec": {"schedulingGates": [{"$patch": "delete", "name": gate}]},
        }
        return dict(
            await self._call(
                "patch",
                PODS,
                namespace,
                name,
                body=body,
                content_type=STRATEGIC_PATCH,
                what=f"remove the scheduling gate of pod {namespace}/{name}",
            )
        )
