"""The Kubernetes adapter: the only module of ours that talks to the Kubernetes API.

A thin async HTTP client on aiohttp (kopf's own HTTP library): one shared session, at most
:data:`MAX_IN_FLIGHT` requests at a time, raw JSON in and out (parsing into typed values happens
in :mod:`alembic_operator.controller.observers`), HTTP errors and connection failures translated
into :mod:`alembic_operator.errors`. The official ``kubernetes`` package only *loads* the
credentials (every kubeconfig and in-cluster credential kind): only ``kubernetes.config`` and
``kubernetes.client.Configuration`` are imported, lazily, never the generated API classes (they
cost ~26 MiB of RSS). A 401 re-reads the credentials once (rotated or expiring tokens). Secret
values never leave :meth:`KubeApi.read_secret_keys`: only the key names do. Two small caches
save requests in bursts: migration bodies from the watch (:meth:`KubeApi.migration_seen`, the
status patch stays resourceVersion-guarded) and a Secret's key names for a few seconds.

Every request names its RBAC verb and a module-level :class:`Resource` (``self._call("get",
JOBS, ...)``): tests/delivery/test_rbac.py reads those calls to prove the chart grants exactly
what this module uses, so keep them literal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NamedTuple

import aiohttp

from alembic_operator import __version__
from alembic_operator.errors import (
    AlreadyExists,
    ApiError,
    ApiUnavailable,
    Conflict,
    Forbidden,
    NotFound,
)
from alembic_operator.model.spec import GROUP, KIND, VERSION

if TYPE_CHECKING:
    from kubernetes.client import Configuration

PLURAL = "databasemigrations"
MERGE_PATCH = "application/merge-patch+json"
EVENT_MESSAGE_LIMIT = 1024
COMPONENT = "alembic-operator"
USER_AGENT = f"alembic-operator/{__version__}"
MAX_IN_FLIGHT = 48  # requests at once (the official client managed ~6: one per pool thread)
REQUEST_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0
# Key names of a Secret that exists are reused this long: a burst of migrations sharing one
# Secret reads it once, not once each. Missing Secrets are never cached (a Secret created later
# is seen on the next look); a key added or removed is seen within this time.
SECRET_KEYS_TTL_SECONDS = 2.0


class Resource(NamedTuple):
    """A REST resource: its API group ("" for core), version and plural."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


MIGRATIONS = Resource(GROUP, VERSION, PLURAL)
JOBS = Resource("batch", "v1", "jobs")
PODS = Resource("", "v1", "pods")
SECRETS = Resource("", "v1", "secrets")
CONFIG_MAPS = Resource("", "v1", "configmaps")
EVENTS = Resource("", "v1", "events")
DEPLOYMENTS = Resource("apps", "v1", "deployments")

# RBAC verb -> HTTP method.
METHODS = {"get": "GET", "list": "GET", "create": "POST", "patch": "PATCH", "delete": "DELETE"}


def load_client() -> Configuration:
    """In-cluster credentials when in a pod, else the kubeconfig (``$KUBECONFIG`` read now).

    The library reads ``$KUBECONFIG`` once at import; reading it here lets one process (the
    sandbox, the tests) point the operator at a cluster chosen after start-up. Blocking (a
    kubeconfig may run an exec plugin): call it from a thread inside the event loop.
    """
    # Lazy, and never the generated API classes (kubernetes.client exports them lazily).
    import kubernetes.config  # noqa: PLC0415
    from kubernetes.client import Configuration  # noqa: PLC0415

    config = Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG"), client_configuration=config
        )
    return config


@dataclass(frozen=True)
class Credentials:
    """What kopf's own client (and ours) needs to reach the cluster with the same identity."""

    server: str
    ca_path: str | None
    insecure: bool
    scheme: str | None
    token: str | None
    certificate_path: str | None
    private_key_path: str | None
    tls_server_name: str | None = None
    proxy: str | None = None

    @property
    def authorization(self) -> str | None:
        if not self.token:
            return None
        return f"{self.scheme or 'Bearer'} {self.token}"


def credentials(config: Configuration) -> Credentials:
    keys = config.api_key or {}
    token = keys.get("authorization") or keys.get("BearerToken")
    scheme, _sep, value = str(token or "").partition(" ")
    if scheme and not value:  # a bare token, no scheme
        scheme, value = "Bearer", scheme
    return Credentials(
        server=str(config.host),
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme or None,
        token=value or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        tls_server_name=getattr(config, "tls_server_name", None) or None,
        proxy=getattr(config, "proxy", None) or None,
    )


def _ssl_context(found: Credentials) -> ssl.SSLContext | bool:
    if not found.server.startswith("https"):
        return True  # plain HTTP: unused
    context = ssl.create_default_context(cafile=found.ca_path)
    if found.certificate_path:
        context.load_cert_chain(found.certificate_path, found.private_key_path)
    if found.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class KubeApi:
    """The calls the operator makes, as coroutines over one shared aiohttp session.

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
        self._credentials = client if isinstance(client, Credentials) else credentials(client)
        self._reload = reload or (lambda: credentials(load_client()))
        self._base = self._credentials.server.rstrip("/")
        self._max_in_flight = max_in_flight
        self._limit = asyncio.Semaphore(max_in_flight)
        self._session: aiohttp.ClientSession | None = None
        self._auth_generation = 0
        self._auth_lock = asyncio.Lock()
        self._secret_keys: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
        self._migrations: dict[tuple[str, str], dict[str, Any]] = {}

    async def open(self) -> None:
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            limit=self._max_in_flight, ssl=_ssl_context(self._credentials)
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(
                total=REQUEST_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS
            ),
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- the one way out --------------------------------------------------------------------

    async def _call(
        self,
        verb: str,
        resource: Resource,
        namespace: str,
        name: str | None = None,
        *,
        what: str,
        subresource: str | None = None,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        text: bool = False,
    ) -> Any:
        """One request: ``verb`` is the RBAC verb; the JSON answer (or text, for logs)."""
        url = self._base + resource.path(namespace, name, subresource)
        data = None if body is None else json.dumps(body).encode()
        method = METHODS[verb]
        retried_auth = False
        retried_connection = False
        while True:
            generation = self._auth_generation
            try:
                status, raw = await self._send(method, url, params, data, content_type)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                # A kept-alive connection the server closed meanwhile: GETs are safe to resend.
                resend = isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError))
                if resend and method == "GET" and not retried_connection:
                    retried_connection = True
                    continue
                raise ApiUnavailable(f"{what}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
            if status == 401 and not retried_auth:
                retried_auth = True
                await self._refresh_credentials(generation)
                continue
            if status >= 400:
                raise _translate(what, status, raw)
            if text:
                return raw.decode("utf-8", errors="replace")
            return json.loads(raw) if raw else {}

    async def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        content_type: str,
    ) -> tuple[int, bytes]:
        if self._session is None:
            await self.open()
        assert self._session is not None
        headers = {"Content-Type": content_type} if data is not None else {}
        authorization = self._credentials.authorization
        if authorization:
            headers["Authorization"] = authorization
        async with (
            self._limit,
            self._session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                proxy=self._credentials.proxy,
                server_hostname=self._credentials.tls_server_name,
            ) as response,
        ):
            return response.status, await response.read()

    async def _refresh_credentials(self, generation: int) -> None:
        """Re-read the credentials once per 401 wave (a token rotated or expired)."""
        async with self._auth_lock:
            if self._auth_generation != generation:
                return  # another request refreshed them meanwhile
            try:
                found = await asyncio.to_thread(self._reload)
            except Exception:  # keep the old ones; the 401 is reported
                found = self._credentials
            self._credentials = found
            self._auth_generation += 1

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
        try:
            return dict(
                await self._call("get", JOBS, namespace, name, what=f"get Job {namespace}/{name}")
            )
        except NotFound:
            return None

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
        self, namespace: str, pod: str, *, container: str, limit_bytes: int
    ) -> str:
        """A container's log from the start (a plan pod's SQL), at most ``limit_bytes``."""
        return str(
            await self._call(
                "get",
                PODS,
                namespace,
                pod,
                subresource="log",
                params={"container": container, "limitBytes": str(limit_bytes)},
                text=True,
                what=f"read the log of pod {namespace}/{pod}",
            )
        )

    async def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        return dict(
            await self._call(
                "create", JOBS, namespace, body=manifest, what=f"create Job {namespace}/{name}"
            )
        )

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; a Job already gone is fine."""
        try:
            await self._call(
                "delete",
                JOBS,
                namespace,
                name,
                params={"propagationPolicy": "Background"},
                what=f"delete Job {namespace}/{name}",
            )
        except NotFound:
            return

    async def list_job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        listed = await self._call(
            "list",
            PODS,
            namespace,
            params={"labelSelector": f"job-name={job_name}"},
            what=f"list pods of Job {namespace}/{job_name}",
        )
        return [dict(item) for item in listed.get("items") or ()]

    async def read_pod_log_tail(
        self, namespace: str, pod: str, *, container: str, limit_bytes: int
    ) -> str:
        return str(
            await self._call(
                "get",
                PODS,
                namespace,
                pod,
                subresource="log",
                params={
                    "container": container,
                    "limitBytes": str(limit_bytes),
                    "tailLines": "200",
                },
                text=True,
                what=f"read the log of pod {namespace}/{pod}",
            )
        )

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


def _translate(what: str, status: int, raw: bytes) -> ApiError:
    reason, detail, phrase = "", "", ""
    try:
        body = json.loads(raw or b"{}")
        reason, detail = str(body.get("reason", "")), str(body.get("message", ""))
    except (TypeError, ValueError, AttributeError):
        detail = raw.decode("utf-8", errors="replace")[:500]
    with contextlib.suppress(ValueError):
        phrase = HTTPStatus(status).phrase
    message = f"{what}: {status} {reason or phrase}: {detail}".rstrip(": ")
    if status == 404:
        return NotFound(message, status=status, reason=reason)
    if status == 409:
        kind = AlreadyExists if reason == "AlreadyExists" else Conflict
        return kind(message, status=status, reason=reason)
    if status in (401, 403):
        return Forbidden(message, status=status, reason=reason)
    if status == 429 or status >= 500:
        return ApiUnavailable(message, status=status, reason=reason)
    return ApiError(message, status=status, reason=reason)
