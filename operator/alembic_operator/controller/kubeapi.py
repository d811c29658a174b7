"""The Kubernetes adapter: the only module of ours that talks to the Kubernetes API.

Wraps the official ``kubernetes`` client (it understands every kubeconfig and in-cluster
credential kind) and runs its blocking calls in threads. Returns raw JSON objects (parsing into
typed values happens in :mod:`alembic_operator.controller.observers`) and translates
``ApiException`` and connection errors into :mod:`alembic_operator.errors`. Secret values never
leave :meth:`KubeApi.read_secret_keys`: only the key names do.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from alembic_operator.errors import (
    AlreadyExists,
    ApiError,
    ApiUnavailable,
    Conflict,
    Forbidden,
    NotFound,
)
from alembic_operator.model.spec import GROUP, KIND, VERSION

PLURAL = "databasemigrations"
MERGE_PATCH = "application/merge-patch+json"
EVENT_MESSAGE_LIMIT = 1024
COMPONENT = "alembic-operator"
_T = TypeVar("_T")


def load_client() -> kubernetes.client.ApiClient:
    """In-cluster credentials when in a pod, else the kubeconfig (``$KUBECONFIG`` read now).

    The library reads ``$KUBECONFIG`` once at import; reading it here lets one process (the
    sandbox, the tests) point the operator at a cluster chosen after start-up.
    """
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG"), client_configuration=config
        )
    return kubernetes.client.ApiClient(config)


@dataclass(frozen=True)
class Credentials:
    """What kopf's own client needs to reach the same cluster with the same identity."""

    server: str
    ca_path: str | None
    insecure: bool
    scheme: str | None
    token: str | None
    certificate_path: str | None
    private_key_path: str | None


def credentials(client: kubernetes.client.ApiClient) -> Credentials:
    config = client.configuration
    keys = config.api_key or {}
    token = keys.get("authorization") or keys.get("BearerToken")
    scheme, _sep, value = str(token or "").partition(" ")
    return Credentials(
        server=str(config.host),
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme or None,
        token=value or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


class KubeApi:
    """The calls the operator makes, as coroutines over the blocking client."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self._client = client
        self._custom = kubernetes.client.CustomObjectsApi(client)
        self._batch = kubernetes.client.BatchV1Api(client)
        self._core = kubernetes.client.CoreV1Api(client)
        self._apps = kubernetes.client.AppsV1Api(client)

    async def _call(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as exc:
            raise _translate(what, exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiUnavailable(f"{what}: {exc}") from None

    async def _json(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        response = await self._call(what, fn, *args, _preload_content=False, **kwargs)
        return json.loads(response.data)

    # --- DatabaseMigrations ---------------------------------------------------------------

    async def get_migration(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                await self._json(
                    f"get {KIND} {namespace}/{name}",
                    self._custom.get_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    name,
                )
            )
        except NotFound:
            return None

    async def patch_migration_status(
        self, namespace: str, name: str, *, status: Mapping[str, Any], resource_version: str
    ) -> dict[str, Any]:
        """Merge-patch the status subresource; 409 Conflict when ``resource_version`` is stale."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": dict(status)}
        return dict(
            await self._json(
                f"patch {KIND} {namespace}/{name} status",
                self._custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type=MERGE_PATCH,
            )
        )

    # --- Jobs and pods ----------------------------------------------------------------------

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                await self._json(
                    f"get Job {namespace}/{name}", self._batch.read_namespaced_job, name, namespace
                )
            )
        except NotFound:
            return None

    async def create_config_map(
        self, namespace: str, manifest: Mapping[str, Any]
    ) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        return dict(
            await self._json(
                f"create ConfigMap {namespace}/{name}",
                self._core.create_namespaced_config_map,
                namespace,
                dict(manifest),
            )
        )

    async def read_pod_log(
        self, namespace: str, pod: str, *, container: str, limit_bytes: int
    ) -> str:
        """A container's log from the start (a plan pod's SQL), at most ``limit_bytes``."""
        response: Any = await self._call(
            f"read the log of pod {namespace}/{pod}",
            self._core.read_namespaced_pod_log,
            pod,
            namespace,
            container=container,
            limit_bytes=limit_bytes,
            _preload_content=False,
        )
        return bytes(response.data).decode("utf-8", errors="replace")

    async def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        return dict(
            await self._json(
                f"create Job {namespace}/{name}",
                self._batch.create_namespaced_job,
                namespace,
                dict(manifest),
            )
        )

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; a Job already gone is fine."""
        try:
            await self._json(
                f"delete Job {namespace}/{name}",
                self._batch.delete_namespaced_job,
                name,
                namespace,
                propagation_policy="Background",
            )
        except NotFound:
            return

    async def list_job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        listed = await self._json(
            f"list pods of Job {namespace}/{job_name}",
            self._core.list_namespaced_pod,
            namespace,
            label_selector=f"job-name={job_name}",
        )
        return [dict(item) for item in listed.get("items", [])]

    async def read_pod_log_tail(
        self, namespace: str, pod: str, *, container: str, limit_bytes: int
    ) -> str:
        response: Any = await self._call(
            f"read the log of pod {namespace}/{pod}",
            self._core.read_namespaced_pod_log,
            pod,
            namespace,
            container=container,
            limit_bytes=limit_bytes,
            tail_lines=200,
            _preload_content=False,
        )
        return bytes(response.data).decode("utf-8", errors="replace")

    # --- Deployments (the rollout gate) -----------------------------------------------------

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                await self._json(
                    f"get Deployment {namespace}/{name}",
                    self._apps.read_namespaced_deployment,
                    name,
                    namespace,
                )
            )
        except NotFound:
            return None

    async def list_deployments(
        self, namespace: str, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Deployments of ``namespace`` (matching ``label_selector`` when given)."""
        kwargs = {"label_selector": label_selector} if label_selector else {}
        listed = await self._json(
            f"list Deployments in {namespace}",
            self._apps.list_namespaced_deployment,
            namespace,
            **kwargs,
        )
        return [dict(item) for item in listed.get("items", [])]

    async def patch_deployment(
        self, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON merge-patch (RFC 7386); a ``metadata.resourceVersion`` in it guards (409)."""
        return dict(
            await self._json(
                f"patch Deployment {namespace}/{name}",
                self._apps.patch_namespaced_deployment,
                name,
                namespace,
                dict(body),
                _content_type=MERGE_PATCH,
            )
        )

    # --- Secrets and Events -----------------------------------------------------------------

    async def read_secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The key names of a Secret (``None`` when it does not exist); values are dropped here."""
        try:
            secret = await self._json(
                f"get Secret {namespace}/{name}", self._core.read_namespaced_secret, name, namespace
            )
        except NotFound:
            return None
        keys = frozenset(secret.get("data") or {}) | frozenset(secret.get("stringData") or {})
        del secret
        return keys

    async def post_event(
        self, involved: Mapping[str, str], *, reason: str, message: str, warning: bool
    ) -> None:
        """A core/v1 Event on ``involved`` (apiVersion, kind, namespace, name, uid)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = involved["namespace"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{involved['name']}.{secrets.token_hex(8)}",
                "namespace": namespace,
            },
            "involvedObject": dict(involved),
            "reason": reason,
            "message": message[:EVENT_MESSAGE_LIMIT],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._json(
            f"post Event {reason} on {namespace}/{involved['name']}",
            self._core.create_namespaced_event,
            namespace,
            event,
        )


def _translate(what: str, exc: ApiException) -> ApiError:
    reason, detail = "", ""
    try:
        body = json.loads(exc.body or "{}")
        reason, detail = str(body.get("reason", "")), str(body.get("message", ""))
    except (TypeError, ValueError):
        detail = str(exc.body or "")
    message = f"{what}: {exc.status} {reason or exc.reason}: {detail}".rstrip(": ")
    status = exc.status
    if status == 404:
        return NotFound(message, status=status, reason=reason)
    if status == 409:
        kind = AlreadyExists if reason == "AlreadyExists" else Conflict
        return kind(message, status=status, reason=reason)
    if status in (401, 403):
        return Forbidden(message, status=status, reason=reason)
    if status is None or status == 429 or status >= 500:
        return ApiUnavailable(message, status=status, reason=reason)
    return ApiError(message, status=status, reason=reason)
