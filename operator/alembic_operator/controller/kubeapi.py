"""The Kubernetes adapter: the only module of ours that talks to the Kubernetes API.

Every call the operator makes, over :class:`~alembic_operator.controller.transport.Transport`
(one session, bounded, errors translated): raw JSON in and out (parsing into typed values
happens in :mod:`alembic_operator.controller.observers`). Secret
values never leave :meth:`KubeApi.read_secret_keys`: only the key names do. Small caches save
requests in bursts: migration bodies from the watch (:meth:`KubeApi.migration_seen`, the status
patch stays resourceVersion-guarded), a Secret's key names for a few seconds, and the migration
Jobs and their pods (:attr:`KubeApi.jobs`, a :class:`~alembic_operator.controller.caches.JobCache`
fed by the watch and by this module's answers; the observer decides when it may be used).

Every request names its RBAC verb and a module-level :class:`Resource` (``self._call("get",
JOBS, ...)``): tests/delivery/test_rbac.py reads those calls to prove the chart grants exactly
what this module uses, so keep them literal.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Mapping
from copy import deepcopy
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alembic_operator.controller.caches import JobCache
from alembic_operator.errors import (
    ApiError,
    ApiUnavailable,
    NotFound,
)
from alembic_operator.model.spec import GROUP, KIND, VERSION

if TYPE_CHECKING:
    from kubernetes.client import Configuration
from alembic_operator.controller.transport import (
    MAX_IN_FLIGHT,
    Credentials,
    Resource,
    Transport,
)

PLURAL = "databasemigrations"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
EVENT_MESSAGE_LIMIT = 1024
COMPONENT = "alembic-operator"
# Key names of a Secret that exists are reused this long: a burst of migrations sharing one
# Secret reads it once, not once each. Missing Secrets are never cached (a Secret created later
# is seen on the next look); a key added or removed is seen within this time.
SECRET_KEYS_TTL_SECONDS = 2.0


MIGRATIONS = Resource(GROUP, VERSION, PLURAL)
JOBS = Resource("batch", "v1", "jobs")
PODS = Resource("", "v1", "pods")
SECRETS = Resource("", "v1", "secrets")
CONFIG_MAPS = Resource("", "v1", "configmaps")
EVENTS = Resource("", "v1", "events")
DEPLOYMENTS = Resource("apps", "v1", "deployments")

# RBAC verb -> HTTP method.


class KubeApi(Transport):
    """The calls the operator makes, as coroutines; :meth:`open`/:meth:`close` the session.

    :meth:`open` (in the operator's event loop, e.g. kopf's startup handler) creates the
    session and :meth:`close` ends it; a call made before :meth:`open` opens it.
    """

    def __init__(
        self,
        client: Configuration | Credentials,
        *,
        reload: Callable[[], Credentials] | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        super().__init__(client, reload=reload, max_in_flight=max_in_flight)
        self._secret_keys: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
        self._migrations: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs = JobCache()

    # --- DatabaseMigrations ---------------------------------------------------------------

    def migration_seen(self, body: Mapping[str, Any]) -> None:
        """A migration's body from the watch: :meth:`get_migration` answers from the newest seen.

        Like an informer's cache: the watch delivers every change, each change triggers a
        reconcile, and a status patch based on a stale body fails with 409 Conflict (it carries
        the resourceVersion), which drops the entry so the retry reads the API. Only integer
        resourceVersions (etcd revisions) are compared; others are never cached.
        """
        self._remember_migration(body)

    def migration_gone(self, namespace: str, name: str) -> None:
        self._migrations.pop((namespace, name), None)

    def _remember_migration(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        version = _version(body)
        if version is None:
            self._migrations.pop(key, None)
            return
        cached = self._migrations.get(key)
        if cached is None or (_version(cached) or 0) < version:
            self._migrations[key] = deepcopy(dict(body))

    async def get_migration(self, namespace: str, name: str) -> dict[str, Any] | None:
        cached = self._migrations.get((namespace, name))
        if cached is not None:
            return deepcopy(cached)
        try:
            body = dict(
                await self._call(
                    "get", MIGRATIONS, namespace, name, what=f"get {KIND} {namespace}/{name}"
                )
            )
        except NotFound:
            return None
        self._remember_migration(body)
        return body

    async def list_migrations(self, namespace: str, *, within: float) -> list[dict[str, Any]]:
        """Every migration of ``namespace``, read from the API now (a consistent LIST).

        For the admission webhook, which must not admit on the word of a watch that may not
        have delivered a migration created a moment ago. A LIST without ``resourceVersion`` is a
        consistent read (served only once the API server has seen etcd's latest revision).
        Bounded by ``within`` seconds: an answer later than that is :class:`ApiUnavailable`.
        Nothing is cached from it.
        """
        try:
            async with asyncio.timeout(within):
                listed = await self._call(
                    "list", MIGRATIONS, namespace, what=f"list {KIND}s in {namespace}"
                )
        except TimeoutError:
            raise ApiUnavailable(
                f"list {KIND}s in {namespace}: no answer within {within:g}s"
            ) from None
        return [dict(item) for item in listed.get("items") or ()]

    async def patch_migration_status(
        self, namespace: str, name: str, *, status: Mapping[str, Any], resource_version: str
    ) -> dict[str, Any]:
        """Merge-patch the status subresource; 409 Conflict when ``resource_version`` is stale."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": dict(status)}
        try:
            stored = dict(
                await self._call(
                    "patch",
                    MIGRATIONS,
                    namespace,
                    name,
                    subresource="status",
                    body=body,
                    content_type=MERGE_PATCH,
                    what=f"patch {KIND} {namespace}/{name} status",
                )
            )
        except ApiError:
            self._migrations.pop((namespace, name), None)  # stale (409) or unknown: read again
            raise
        self._remember_migration(stored)
        return stored

    # --- Jobs and pods ----------------------------------------------------------------------

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job (``None`` when it does not exist); the answer updates :attr:`jobs`."""
        since = self.jobs.now()
        try:
            job = dict(
                await self._call("get", JOBS, namespace, name, what=f"get Job {namespace}/{name}")
            )
        except NotFound:
            self.jobs.job_absent(namespace, name, since=since)
            return None
        self.jobs.job_seen(job)
        return job

    async def create_config_map(
        self, namespace: str, manifest: Mapping[str, Any]
    ) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        return dict(
            await self._call(
                "create",
                CONFIG_MAPS,
                namespace,
                body=manifest,
                what=f"create ConfigMap {namespace}/{name}",
            )
        )

    async def read_pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str,
        limit_bytes: int,
        tail_lines: int | None = None,
    ) -> str:
        """A container's log (the last ``tail_lines`` lines, or from the start), capped in bytes."""
        params = {"container": container, "limitBytes": str(limit_bytes)}
        if tail_lines is not None:
            params["tailLines"] = str(tail_lines)
        return str(
            await self._call(
                "get",
                PODS,
                namespace,
                pod,
                subresource="log",
                params=params,
                text=True,
                what=f"read the log of pod {namespace}/{pod}",
            )
        )

    async def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        job = dict(
            await self._call(
                "create", JOBS, namespace, body=manifest, what=f"create Job {namespace}/{name}"
            )
        )
        self.jobs.job_created(job)  # no pods yet: the watch delivers each one
        return job

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; a Job already gone is fine."""
        with contextlib.suppress(NotFound):
            await self._call(
                "delete",
                JOBS,
                namespace,
                name,
                params={"propagationPolicy": "Background"},
                what=f"delete Job {namespace}/{name}",
            )
        self.jobs.job_deleted(namespace, name)

    async def list_job_pods(
        self, namespace: str, job_name: str, *, job_uid: str | None = None
    ) -> list[dict[str, Any]]:
        """The pods of a Job; with ``job_uid``, :attr:`jobs` knows that Job's pods from now on."""
        listed = await self._call(
            "list",
            PODS,
            namespace,
            params={"labelSelector": f"job-name={job_name}"},
            what=f"list pods of Job {namespace}/{job_name}",
        )
        items = [dict(item) for item in listed.get("items") or ()]
        if job_uid is not None:
            self.jobs.pods_listed(
                namespace,
                job_name,
                job_uid=job_uid,
                items=items,
                list_version=(listed.get("metadata") or {}).get("resourceVersion"),
            )
        return items

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
        self, namespace: str, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Deployments of ``namespace`` (matching ``label_selector`` when given)."""
        listed = await self._call(
            "list",
            DEPLOYMENTS,
            namespace,
            params={"labelSelector": label_selector} if label_selector else None,
            what=f"list Deployments in {namespace}",
        )
        return [dict(item) for item in listed.get("items") or ()]

    async def patch_deployment(
        self, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON merge-patch (RFC 7386); a ``metadata.resourceVersion`` in it guards (409)."""
        return dict(
            await self._call(
                "patch",
                DEPLOYMENTS,
                namespace,
                name,
                body=body,
                content_type=MERGE_PATCH,
                what=f"patch Deployment {namespace}/{name}",
            )
        )

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

    # --- Secrets and Events -----------------------------------------------------------------

    async def read_secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The key names of a Secret (``None`` when it does not exist); values are dropped here."""
        now = time.monotonic()
        cached = self._secret_keys.get((namespace, name))
        if cached is not None and now - cached[0] < SECRET_KEYS_TTL_SECONDS:
            return cached[1]
        try:
            secret = await self._call(
                "get", SECRETS, namespace, name, what=f"get Secret {namespace}/{name}"
            )
        except NotFound:
            self._secret_keys.pop((namespace, name), None)
            return None
        keys = frozenset(secret.get("data") or {}) | frozenset(secret.get("stringData") or {})
        del secret
        if len(self._secret_keys) > 1024:  # bounded: forget the expired ones
            self._secret_keys = {
                k: v for k, v in self._secret_keys.items() if now - v[0] < SECRET_KEYS_TTL_SECONDS
            }
        self._secret_keys[(namespace, name)] = (now, keys)
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
        await self._call(
            "create",
            EVENTS,
            namespace,
            body=event,
            what=f"post Event {reason} on {namespace}/{involved['name']}",
        )


def _version(body: Mapping[str, Any]) -> int | None:
    try:
        return int(str((body.get("metadata") or {}).get("resourceVersion")))
    except ValueError:
        return None
