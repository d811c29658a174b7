"""The operator's one Kubernetes client: lightkube's ``AsyncClient`` behind one call.

lightkube (why it and not kubernetes_asyncio: docs/architecture.md, "One Kubernetes client")
authenticates (:mod:`~alembic_operator.controller.credentials` loads its configuration), builds
the requests and decodes the answers; objects stay raw JSON, as lightkube's generic resources
(``dict``s), never generated models. This module adds what the operator needs around it: a bound
on requests in flight, its own User-Agent, one retry of a GET on a connection the server closed,
one reload of the credentials on a 401, and the translation of lightkube's and httpx's errors into
:mod:`alembic_operator.errors`. It knows no resource of its own: what is called lives in
:mod:`~alembic_operator.controller.kubeapi`, :mod:`~alembic_operator.controller.workloadapi` and
:mod:`~alembic_operator.controller.ownapi`. It must not decide or parse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from typing import Any, NamedTuple

import httpx2
import lightkube
from lightkube import operators
from lightkube.config.client_adapter import verify_cluster
from lightkube.config.kubeconfig import SingleConfig
from lightkube.config.models import User
from lightkube.core.exceptions import ApiError as LightkubeError
from lightkube.generic_resource import (
    create_global_resource,
    create_namespaced_resource,
    get_generic_resource,
)
from lightkube.types import CascadeType, PatchType

from alembic_operator import __version__
from alembic_operator.controller.credentials import load_config
from alembic_operator.errors import (
    AlreadyExists,
    ApiError,
    ApiUnavailable,
    Conflict,
    Forbidden,
    NotFound,
)
from alembic_operator.model.spec import LabelSelector

USER_AGENT = f"alembic-operator/{__version__}"
MAX_IN_FLIGHT = 48  # requests at once
REQUEST_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
_PATCH_TYPES = {
    MERGE_PATCH: PatchType.MERGE,
    JSON_PATCH: PatchType.JSON,
    STRATEGIC_PATCH: PatchType.STRATEGIC,
}
# The RBAC verbs a call may name (tests/delivery/test_rbac.py derives the chart's rules from them).
VERBS = frozenset({"get", "list", "create", "update", "patch", "delete"})


class Resource(NamedTuple):
    """A REST resource: its API group ("" for core), version, plural and kind."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True


@cache
def _generic(resource: Resource) -> Any:
    """lightkube's generic resource class for ``resource`` (its objects are plain ``dict``s)."""
    # Defined once per process (the CLI may have defined it): lightkube's own lookup of a core
    # group resource misses its registration, so a second definition would be refused.
    api_version = f"{resource.group}/{resource.version}" if resource.group else resource.version
    found = get_generic_resource(api_version, resource.kind)  # type: ignore[no-untyped-call]
    if found is not None:
        return found
    create = create_namespaced_resource if resource.namespaced else create_global_resource
    return create(resource.group, resource.version, resource.kind, resource.plural)


def selector_pairs(selector: LabelSelector) -> list[tuple[str, Any]]:
    """A label selector as lightkube's ``labels`` (pairs of key and operator)."""
    pairs: list[tuple[str, Any]] = sorted(selector.match_labels.items())
    for expression in selector.match_expressions:
        key, operator = str(expression.get("key")), str(expression.get("operator"))
        values = sorted(str(v) for v in expression.get("values") or ())
        if operator == "In":
            pairs.append((key, operators.in_(values)))
        elif operator == "NotIn":
            pairs.append((key, operators.not_in(values)))
        elif operator == "DoesNotExist":
            pairs.append((key, operators.not_exists()))
        else:  # Exists (the CRD admits no other operator)
            pairs.append((key, operators.exists()))
    return pairs


class _Identified(httpx2.AsyncBaseTransport):
    """Names the operator in every request (audit logs and the tests tell it from kopf)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["User-Agent"] = USER_AGENT
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _client_for(config: SingleConfig, max_in_flight: int) -> lightkube.AsyncClient:
    # A transport given to httpx replaces the one it would build, so it carries the TLS
    # settings lightkube derives from the kubeconfig (CA, client certificate, insecure).
    verify = verify_cluster(config.cluster, config.user or User(), config.abs_file)
    limits = httpx2.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    inner = httpx2.AsyncHTTPTransport(verify=verify, limits=limits)
    return lightkube.AsyncClient(
        config=config,
        timeout=httpx2.Timeout(REQUEST_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        transport=_Identified(inner),
        trust_env=False,  # no proxy from the environment: the kubeconfig says where to go
    )


class Transport:
    """One lightkube client to the API server: credentials, limits, errors.

    :meth:`open` (in the operator's event loop, e.g. kopf's startup handler) creates the
    client and :meth:`close` ends it; a call made before :meth:`open` opens it.
    """

    def __init__(
        self,
        config: SingleConfig,
        *,
        reload: Callable[[], SingleConfig] | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._config = config
        self._reload = reload or load_config
        self._max_in_flight = max_in_flight
        self._limit = asyncio.Semaphore(max_in_flight)
        self._client: lightkube.AsyncClient | None = None
        self._retired: list[lightkube.AsyncClient] = []
        self._auth_generation = 0
        self._auth_lock = asyncio.Lock()

    async def open(self) -> None:
        if self._client is None:
            self._client = _client_for(self._config, self._max_in_flight)

    async def close(self) -> None:
        clients = [c for c in (self._client, *self._retired) if c is not None]
        self._client, self._retired = None, []
        for client in clients:
            await client.close()

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
        body: Mapping[str, Any] | Sequence[Any] | None = None,
        content_type: str = MERGE_PATCH,
        labels: Iterable[tuple[str, Any]] | None = None,
        log: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request: ``verb`` is the RBAC verb; the object (a ``dict``), the items of a list,
        a log's text, or ``None`` for a delete. ``log``: lightkube's ``log()`` keywords."""
        retried_auth = retried_connection = False
        while True:
            generation = self._auth_generation
            try:
                async with self._limit:
                    return await self._send(
                        verb, resource, namespace, name,
                        subresource=subresource, body=body, content_type=content_type,
                        labels=labels, log=log,
                    )  # fmt: skip
            except httpx2.HTTPStatusError as exc:  # lightkube's ApiError is one too
                status = exc.response.status_code
                if status == 401 and not retried_auth:
                    retried_auth = True
                    await self._refresh_credentials(generation)
                    continue
                raise _translate(what, exc) from None
            except (httpx2.RemoteProtocolError, httpx2.ReadError) as exc:
                # A kept-alive connection the server closed meanwhile: reads are safe to resend.
                if verb in ("get", "list") and not retried_connection:
                    retried_connection = True
                    continue
                raise _unavailable(what, exc) from None
            except (httpx2.HTTPError, OSError) as exc:
                raise _unavailable(what, exc) from None

    async def _send(
        self,
        verb: str,
        resource: Resource,
        namespace: str,
        name: str | None,
        *,
        subresource: str | None,
        body: Mapping[str, Any] | Sequence[Any] | None,
        content_type: str,
        labels: Iterable[tuple[str, Any]] | None,
        log: Mapping[str, Any] | None,
    ) -> Any:
        if self._client is None:
            await self.open()
        client = self._client
        assert client is not None
        res = _generic(resource)
        ns = namespace if resource.namespaced else None
        if verb == "get" and subresource == "log":
            lines = client.log(str(name), namespace=ns, **(log or {}))
            return "".join([line async for line in lines])
        if subresource == "status":
            res = res.Status
        if verb == "get":
            return dict(await client.get(res, str(name), namespace=ns))
        if verb == "list":
            # Pairs, not a dict: a key may appear twice (lightkube's selector builder takes both).
            selector: Any = list(labels) if labels else None
            listed = client.list(res, namespace=ns, labels=selector)
            return [dict(item) async for item in listed]
        if verb == "create":  # lightkube takes the namespace from the body's metadata
            return dict(await client.create(res(_placed(body, ns))))
        if verb == "update":
            return dict(await client.replace(res(_placed(body, ns))))
        if verb == "patch":
            patch_type = _PATCH_TYPES[content_type]
            return dict(
                await client.patch(res, str(name), body, namespace=ns, patch_type=patch_type)
            )
        if verb == "delete":
            await client.delete(res, str(name), namespace=ns, cascade=CascadeType.BACKGROUND)
            return None
        raise ValueError(f"not an RBAC verb the adapter sends: {verb!r}")

    async def _refresh_credentials(self, generation: int) -> None:
        """Re-read the credentials once per 401 wave (a token rotated or expired)."""
        async with self._auth_lock:
            if self._auth_generation != generation:
                return  # another request refreshed them meanwhile
            self._auth_generation += 1
            try:
                config = await asyncio.to_thread(self._reload)
            except Exception:  # keep the old ones; the 401 is reported
                return
            # Requests in flight finish on the old client; it is closed with this one.
            if self._client is not None:
                self._retired.append(self._client)
            self._config, self._client = config, _client_for(config, self._max_in_flight)


def _placed(body: Mapping[str, Any] | Sequence[Any] | None, namespace: str | None) -> Any:
    """``body`` with ``metadata.namespace`` set to the namespace the call names."""
    if not isinstance(body, Mapping):
        raise TypeError("create and update take an object")
    if namespace is None:
        return dict(body)
    return {**body, "metadata": {**(body.get("metadata") or {}), "namespace": namespace}}


def _translate(what: str, exc: httpx2.HTTPStatusError) -> ApiError:
    status = exc.response.status_code
    reason, detail = _status_of(exc)
    phrase = exc.response.reason_phrase
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


def _status_of(exc: httpx2.HTTPStatusError) -> tuple[str, str]:
    """The Status object's reason and message; else the start of the body says what happened."""
    if isinstance(exc, LightkubeError):
        return str(exc.status.reason or ""), str(exc.status.message or "")
    # lightkube decodes a Status only when the Content-Type is exactly application/json.
    try:
        body = exc.response.json()
        return str(body.get("reason", "")), str(body.get("message", ""))
    except (ValueError, AttributeError):
        return "", exc.response.text[:500]


def _unavailable(what: str, exc: BaseException) -> ApiUnavailable:
    return ApiUnavailable(f"{what}: {type(exc).__name__}: {exc}".rstrip(": "))
