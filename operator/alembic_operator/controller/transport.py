"""The transport to the Kubernetes API server: credentials, one session, one request path.

A thin async HTTP client on aiohttp (kopf's own HTTP library): one shared session, at most
:data:`MAX_IN_FLIGHT` requests at a time, HTTP errors and connection failures translated into
:mod:`alembic_operator.errors`. The official ``kubernetes`` package only *loads* the credentials
(every kubeconfig and in-cluster credential kind): only ``kubernetes.config`` and
``kubernetes.client.Configuration`` are imported, lazily, never the generated API classes (they
cost ~26 MiB of RSS). A 401 re-reads the credentials once (rotated or expiring tokens). What is
called lives in :mod:`alembic_operator.controller.kubeapi`; this module knows no resource.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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

if TYPE_CHECKING:
    from kubernetes.client import Configuration

USER_AGENT = f"alembic-operator/{__version__}"
MAX_IN_FLIGHT = 48  # requests at once (the official client managed ~6: one per pool thread)
REQUEST_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0


class Resource(NamedTuple):
    """A REST resource: its API group ("" for core), version and plural."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path; an empty ``namespace`` means a cluster-scoped resource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        scope = f"/namespaces/{namespace}" if namespace else ""
        path = f"{base}{scope}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


# RBAC verb -> HTTP method.
METHODS = {
    "get": "GET",
    "list": "GET",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
}


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


def token_subject(token: str | None) -> str | None:
    """The username a ServiceAccount token authenticates as (its JWT ``sub``), if it is one.

    Read without verifying the signature: only to recognise the operator's own requests at
    admission (the apiserver did the authentication). ``None`` for other credentials.
    """
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return str(subject) if subject else None


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


class Transport:
    """One shared aiohttp session to the API server: credentials, limits, errors.

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
        body: Mapping[str, Any] | Sequence[Any] | None = None,
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
