"""The Kubernetes adapter: the only module of ours that talks to the Kubernetes API (with its
base :mod:`~alembic_operator.controller.workloadapi`, the gate's calls on Deployments and pods).

Every call the operator makes, over :class:`~alembic_operator.controller.transport.Transport`
(one session, bounded, errors translated): raw JSON in and out (parsing into typed values
happens in :mod:`alembic_operator.controller.observers`). Secret
values never leave :meth:`KubeApi.read_secret_keys`: only the key names do. The caches of API
objects follow the one policy of :mod:`alembic_operator.controller.caches` (opaque
resourceVersions, expiry, resync) and are fed by the watch and by this module's answers:
migration bodies (:attr:`KubeApi.migrations`; the status patch stays resourceVersion-guarded),
the migration Jobs and their pods (:attr:`KubeApi.jobs`, a
:class:`~alembic_operator.controller.jobcache.JobCache`; the observer decides when it may be
used), and logs of terminated containers (:attr:`KubeApi.logs`, by pod uid). A Secret's key
names are reused for a few seconds (not watched: a burst of reads, read once).

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

from alembic_operator.controller.caches import (
    CachePolicy,
    LogCache,
    Store,
    key_of,
    uid_of,
    version_of,
)
from alembic_operator.controller.jobcache import JobCache
from alembic_operator.controller.transport import MAX_IN_FLIGHT, MERGE_PATCH, Resource
from alembic_operator.controller.workloadapi import WorkloadApi
from alembic_operator.core.names import event_name
from alembic_operator.errors import (
    ApiError,
    ApiUnavailable,
    NotFound,
)
from alembic_operator.model.spec import GROUP, KIND, VERSION

if TYPE_CHECKING:
    from alembic_operator.controller.credentials import Config

PLURAL = "databasemigrations"
EVENT_MESSAGE_LIMIT = 1024
COMPONENT = "alembic-operator"
# Key names of a Secret that exists are reused this long: a burst of migrations sharing one
# Secret reads it once, not once each. Missing Secrets are never cached (a Secret created later
# is seen on the next look); a key added or removed is seen within this time.
SECRET_KEYS_TTL_SECONDS = 2.0
ALL_NAMESPACES = "*"  # lightkube's "every namespace" for a LIST


MIGRATIONS = Resource(GROUP, VERSION, PLURAL, KIND)
JOBS = Resource("batch", "v1", "jobs", "Job")
PODS = Resource("", "v1", "pods", "Pod")
SECRETS = Resource("", "v1", "secrets", "Secret")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
EVENTS = Resource("", "v1", "events", "Event")


class KubeApi(WorkloadApi):
    """The calls the operator makes, as coroutines; :meth:`open`/:meth:`close` the session.

    :meth:`open` (in the operator's event loop, e.g. kopf's startup handler) creates the
    session and :meth:`close` ends it; a call made before :meth:`open` opens it.
    """

    def __init__(
        self,
        config: Config,
        *,
        reload: Callable[[], Config] | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        policy: CachePolicy | None = None,
    ) -> None:
        super().__init__(config, reload=reload, max_in_flight=max_in_flight)
        self.policy = policy or CachePolicy()
        self._secret_keys: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
        self.migrations: Store[dict[str, Any]] = Store(self.policy)
        self.jobs = JobCache(self.policy)
        self.logs = LogCache()

    # --- DatabaseMigrations ---------------------------------------------------------------

    def migration_seen(self, body: Mapping[str, Any]) -> None:
        """A migration's body from the watch: :meth:`get_migration` answers from it (a status
        patch from a stale body gets 409, which expires the entry: the retry reads the API)."""
        key, uid, version = key_of(body), uid_of(body), version_of(body)
        self.migrations.seen(key, deepcopy(dict(body)), uid=uid, version=version)

    def migration_gone(self, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Its DELETED event."""
        self.migrations.gone((namespace, name), uid=uid)

    async def get_migration(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The body held if confirmed within the policy's period, else a GET (404: ``None``)."""
        cached = self.migrations.get((namespace, name))
        if cached is not None:
            return deepcopy(cached)
        since = self.migrations.now()
        try:
            body = dict(
                await self._call(
                    "get", MIGRATIONS, namespace, name, what=f"get {KIND} {namespace}/{name}"
                )
            )
        except NotFound:
            self.migrations.absent((namespace, name), since=since)
            return None
        self._migration_answered(body, since=since)
        return body

    def _migration_answered(self, body: Mapping[str, Any], *, since: float) -> None:
        key, uid, version = key_of(body), uid_of(body), version_of(body)
        self.migrations.answered(key, deepcopy(dict(body)), uid=uid, version=version, since=since)

    async def resync_migrations(self, namespace: str | None) -> list[tuple[str, str]]:
        """LIST the migrations of ``namespace`` (``None``: every namespace, one request) into
        the store; the ones it held there that are gone."""
        since = self.migrations.now()
        scope = namespace if namespace is not None else ALL_NAMESPACES
        listed = await self._call(
            "list", MIGRATIONS, scope, what=f"list {KIND} in {namespace or 'all namespaces'}"
        )
        present = {key_of(item) for item in listed}
        for item in listed:
            self._migration_answered(item, since=since)
        held = [namespace] if namespace is not None else list(self.migrations.namespaces())
        return [
            (ns, name)
            for ns in held
            for name, _ in self.migrations.entries(ns)
            if (ns, name) not in present and self.migrations.absent((ns, name), since=since)
        ]

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
        return list(listed)

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
            self.migrations.expire((namespace, name))  # stale (409) or unknown: read again
            raise
        self.migrations.written(
            (namespace, name), deepcopy(stored), uid=uid_of(stored), version=version_of(stored)
        )
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
        self.jobs.job_answered(job, since=since)
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
        terminated_uid: str | None = None,
    ) -> str:
        """A container's log (the last ``tail_lines`` lines, or from the start), capped in bytes.

        ``terminated_uid``: the pod's uid, its container ended (the log is final): read once.
        """
        cache_key = (terminated_uid or "", container, limit_bytes, tail_lines)
        if terminated_uid:
            cached = self.logs.get(cache_key)
            if cached is not None:
                return cached
        # lightkube's log() has no limitBytes: the cap is applied here, on a log the apiserver
        # already bounds by tailLines for the tail (the plan log is the runner's own output).
        text = str(
            await self._call(
                "get",
                PODS,
                namespace,
                pod,
                subresource="log",
                log={"container": container, "tail_lines": tail_lines},
                what=f"read the log of pod {namespace}/{pod}",
            )
        )
        text = text.encode()[:limit_bytes].decode("utf-8", errors="ignore")
        if terminated_uid:
            self.logs.put(cache_key, text)
        return text

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
                what=f"delete Job {namespace}/{name}",
            )
        self.jobs.job_deleted(namespace, name)

    async def list_job_pods(
        self, namespace: str, job_name: str, *, job_uid: str | None = None
    ) -> list[dict[str, Any]]:
        """The pods of a Job; with ``job_uid``, :attr:`jobs` knows that Job's pods from now on."""
        since = self.jobs.now()
        listed = await self._call(
            "list",
            PODS,
            namespace,
            labels=[("job-name", job_name)],
            what=f"list pods of Job {namespace}/{job_name}",
        )
        items = list(listed)
        if job_uid is not None:
            self.jobs.pods_listed(namespace, job_name, job_uid=job_uid, items=items, since=since)
        return items

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
        """A core/v1 Event on ``involved`` (apiVersion, kind, namespace, name, uid).

        Named ``<involved name>.<random token>`` like client-go's, the involved name cut with a
        hash (:func:`~alembic_operator.core.names.event_name`) when the whole would pass 253.
        """
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = involved["namespace"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name(involved["name"], token=secrets.token_hex(8)),
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
