"""The Kubernetes calls about the operator's *own* objects: its Lease, its certificate Secret and
its MutatingWebhookConfiguration.

The second (and last) adapter beside :mod:`alembic_operator.controller.kubeapi`, over the same
:class:`~alembic_operator.controller.transport.Transport`: kubeapi.py is about the objects the
operator manages for its users, this module about the few it keeps for itself in its own
namespace (leader election, the webhook's serving certificate). The chart grants these calls on
those objects only (``resourceNames``), and only in the operator's namespace.

Unlike every other Secret, the certificate Secret is read in full: its values are the
operator's own key material. Writes carry the ``resourceVersion`` they are based on, so two
replicas never overwrite each other (409 Conflict: read again). Keep the ``self._call`` calls
literal: tests/delivery/test_rbac.py derives the chart's rules from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alembic_operator.controller.transport import JSON_PATCH, Resource, Transport
from alembic_operator.errors import NotFound

OWN_SECRETS = Resource("", "v1", "secrets", "Secret")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "mutatingwebhookconfigurations",
    "MutatingWebhookConfiguration",
    namespaced=False,
)


class OwnApi(Transport):
    """Reads and guarded writes of the operator's Lease, certificate Secret and webhook config."""

    # --- the leader-election Lease ----------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                await self._call(
                    "get", LEASES, namespace, name, what=f"get Lease {namespace}/{name}"
                )
            )
        except NotFound:
            return None

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return dict(
            await self._call(
                "create", LEASES, namespace, body=body, what=f"create Lease {namespace}/{name}"
            )
        )

    async def update_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the Lease; its ``metadata.resourceVersion`` guards (409 when it moved)."""
        name = body["metadata"]["name"]
        return dict(
            await self._call(
                "update",
                LEASES,
                namespace,
                name,
                body=body,
                what=f"update Lease {namespace}/{name}",
            )
        )

    # --- the webhook's certificate Secret ---------------------------------------------------

    async def get_own_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                await self._call(
                    "get", OWN_SECRETS, namespace, name, what=f"get Secret {namespace}/{name}"
                )
            )
        except NotFound:
            return None

    async def create_own_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return dict(
            await self._call(
                "create",
                OWN_SECRETS,
                namespace,
                body=body,
                what=f"create Secret {namespace}/{name}",
            )
        )

    async def update_own_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return dict(
            await self._call(
                "update",
                OWN_SECRETS,
                namespace,
                name,
                body=body,
                what=f"update Secret {namespace}/{name}",
            )
        )

    # --- the MutatingWebhookConfiguration ---------------------------------------------------

    async def get_webhook_configuration(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                await self._call(
                    "get",
                    WEBHOOK_CONFIGURATIONS,
                    "",
                    name,
                    what=f"get MutatingWebhookConfiguration {name}",
                )
            )
        except NotFound:
            return None

    async def patch_webhook_configuration(
        self, name: str, operations: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """A JSON patch (RFC 6902): its ``test`` operations make a stale one fail (422)."""
        return dict(
            await self._call(
                "patch",
                WEBHOOK_CONFIGURATIONS,
                "",
                name,
                body=list(operations),
                content_type=JSON_PATCH,
                what=f"patch MutatingWebhookConfiguration {name}",
            )
        )
