"""An apiserver-faithful Kubernetes API emulator on top of kmock's ``KubernetesEmulator``.

:class:`ApiServer` keeps kmock's machinery (discovery, request recording, user reactions such as
``api['post', kmock.resource('batch/v1/jobs')] << 500``, which take precedence over emulation)
but replaces kmock's naive object handling with :class:`~.registry.Registry` (apiserver
semantics), :mod:`.watching` (gap-free watches) and :mod:`.collector` (ownerReference garbage
collection, run in the background after deletions). It serves plain HTTP on 127.0.0.1::

    async with ApiServer() as api:                  # or: await api.start() ... await api.stop()
        write_kubeconfig(tmp / "kubeconfig", api.base_url)
        api.install_crd(crd)
        ...
        assert api.count(verb="patch", plural="databasemigrations") == 2

Every request is logged in :attr:`ApiServer.calls` (method, path, content type, status, verb,
user agent; a watch is logged when its stream ends); :attr:`ApiServer.writes` and
:meth:`ApiServer.count` query it. :meth:`ApiServer.inject_fault` makes chosen requests fail,
before or after their write happens. In-process callers use :attr:`ApiServer.registry` (same
semantics and watch events as HTTP) and :func:`.watching.follow`; :meth:`ApiServer.set_pod_log`
feeds ``pods/log``; :meth:`ApiServer.install_kopf_peering` adds kopf's peering CRDs. The
registry is not thread-safe: use it from the emulator's event loop. The module never imports
Alembic or SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

import aiohttp.web
import attrs
import kmock

from alembic_operator.emulation import errors, handlers
from alembic_operator.emulation.catalog import ResourceType
from alembic_operator.emulation.collector import collect_garbage
from alembic_operator.emulation.kubeconfig import write_kubeconfig
from alembic_operator.emulation.peering import KOPF_PEERING_CRDS
from alembic_operator.emulation.registry import Registry, Validator
from alembic_operator.emulation.routing import ApiPath, parse_path, verb_of

logger = logging.getLogger(__name__)

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_KEPT_REQUESTS = 5000  # kmock keeps every request with its body; trim to this many
_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Gone",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclasses.dataclass(frozen=True)
class ApiCall:
    """One served request, as recorded in :attr:`ApiServer.calls`."""

    method: str
    path: str
    query: str
    content_type: str
    status: int
    verb: str
    group: str | None
    plural: str | None
    namespace: str | None
    name: str | None
    subresource: str | None
    user_agent: str
    started: float  # time.monotonic()
    duration: float

    @property
    def is_write(self) -> bool:
        """Whether this was a create, update, patch or delete."""
        return self.verb in WRITE_VERBS


@dataclasses.dataclass
class Fault:
    """A failure to inject: the first matching requests answer ``status`` instead.

    With ``after_write`` the request is served (the write happens) and then answered with the
    error, like a response lost to a timeout. ``delay`` sleeps before answering. ``times=None``
    means every matching request.
    """

    verb: str | None = None
    plural: str | None = None
    name: str | None = None
    subresource: str | None = None
    status: int = 500
    message: str = "injected fault"
    reason: str | None = None
    after_write: bool = False
    delay: float = 0.0
    times: int | None = 1
    hits: int = 0

    def matches(self, verb: str, path: ApiPath) -> bool:
        """Whether this fault applies to a request and still has uses left."""
        wanted = (self.verb, self.plural, self.name, self.subresource)
        actual = (verb, path.plural, path.name, path.subresource)
        return (self.times is None or self.hits < self.times) and all(
            w is None or w == a for w, a in zip(wanted, actual, strict=True)
        )

    def error(self) -> errors.ApiError:
        """The error answered for this fault."""
        return errors.ApiError(
            self.status, self.reason or _REASONS.get(self.status, "Unknown"), self.message, {}
        )


class _Served(Exception):
    """Carries a finished response out of kmock's reaction machinery back to ``__call__``."""

    def __init__(self, response: aiohttp.web.StreamResponse) -> None:
        super().__init__()
        self.response = response


@functools.cache
def _kmock_resource(group: str | None, version: str | None, plural: str | None) -> Any:
    return kmock.resource(group=group, version=version, plural=plural)  # immutable: shared


def _status_response(exc: errors.ApiError) -> aiohttp.web.Response:
    return aiohttp.web.json_response(exc.status(), status=exc.code, headers=exc.headers or None)


@attrs.define(kw_only=True, eq=False)
class ApiServer(kmock.KubernetesEmulator):
    """A kmock ``KubernetesEmulator`` that behaves like a real apiserver (see the module doc)."""

    registry: Registry = attrs.field(factory=Registry)
    host: str = "127.0.0.1"
    port: int = 0
    calls: list[ApiCall] = attrs.field(factory=list, init=False)
    faults: list[Fault] = attrs.field(factory=list, init=False)
    _closing: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _runner: aiohttp.web.ServerRunner | None = attrs.field(default=None, init=False)
    _bound_port: int | None = attrs.field(default=None, init=False)
    _gc_busy: bool = attrs.field(default=False, init=False)
    _api_reaction: Any = attrs.field(default=None, init=False)
    _builtin_reactions: tuple[Any, ...] = attrs.field(default=(), init=False)
    _request_ids: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        # Discovery and the catch-all 404 of the scaffold, but not kmock's naive object handling:
        # resource requests go to the emulation, below user-defined reactions.
        kmock.KubernetesScaffold.__attrs_post_init__(self)
        self._api_reaction = (self.fallback**1)[self._is_resource_request] << self._serve_resource
        self._builtin_reactions = tuple(self._payloads)
        for rtype in self.registry.catalog:
            self._on_catalog_change(rtype, True)
        self.registry.catalog.subscribe(self._on_catalog_change)
        self.registry.on_gc_needed = self._schedule_gc

    # --- serving --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` while serving."""
        if self._bound_port is None:
            raise RuntimeError("the emulator is not serving; use `async with` or start()")
        return f"http://{self.host}:{self._bound_port}"

    async def start(self) -> str:
        """Serve on ``host:port`` (port 0: a free one); returns the base URL."""
        if self._runner is not None:
            return self.base_url
        await kmock.KubernetesEmulator.__aenter__(self)
        self._closing.clear()
        server = aiohttp.web.Server(self, handler_cancellation=True, access_log=None)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        await aiohttp.web.SockSite(runner, sock).start()
        self._runner, self._bound_port = runner, sock.getsockname()[1]
        return self.base_url

    async def stop(self) -> None:
        """End the watch streams and stop serving."""
        if self._runner is None:
            return
        self._closing.set()
        self.registry.store.wake()
        runner, self._runner = self._runner, None
        await runner.cleanup()
        self._bound_port = None
        await kmock.KubernetesEmulator.__aexit__(self, None, None, None)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def write_kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig pointing at this emulator (plain HTTP, empty user)."""
        return write_kubeconfig(path, self.base_url, namespace=namespace)

    # --- conveniences for tests and in-process controllers --------------------------------------

    def resource_type(self, name: str, api_version: str | None = None) -> ResourceType:
        """A served type by plural, singular, kind or short name (``"jobs"``, ``"dbm"``)."""
        return self.registry.catalog.find(name, api_version)

    def install_crd(self, crd: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a CRD; its resources are served at once."""
        return self.registry.install_crd(crd)

    def install_kopf_peering(self, name: str = "default", namespace: str | None = None) -> None:
        """Install kopf's peering CRDs and a peering object (cluster-wide, or in ``namespace``)."""
        for crd in KOPF_PEERING_CRDS:
            self.install_crd(crd)
        plural = "kopfpeerings" if namespace else "clusterkopfpeerings"
        rtype = self.registry.catalog.find(plural, "kopf.dev/v1")
        if self.registry.store.get(rtype.storage_key, namespace, name) is None:
            self.registry.create(rtype, namespace, {"metadata": {"name": name}})

    def set_validator(self, rtype: ResourceType, validator: Validator) -> None:
        """Use ``validator`` for a custom resource instead of the admission module's."""
        self.registry.validation.overrides[(rtype.group, rtype.version, rtype.plural)] = validator

    def set_pod_log(self, namespace: str, pod: str, container: str | None, text: str) -> None:
        """Set the text ``pods/log`` serves for a pod's container (a kubelet's ``log_sink``)."""
        self.registry.set_pod_log(namespace, pod, container, text)

    def inject_fault(self, **fields: Any) -> Fault:
        """Add a :class:`Fault` (see its fields) and return it."""
        fault = Fault(**fields)
        self.faults.append(fault)
        return fault

    @property
    def writes(self) -> list[ApiCall]:
        """The recorded create/update/patch/delete calls."""
        return [call for call in self.calls if call.is_write]

    def count(self, **criteria: Any) -> int:
        """How many recorded calls match all ``criteria`` (ApiCall fields, e.g. verb="patch")."""
        return sum(all(getattr(c, k) == v for k, v in criteria.items()) for c in self.calls)

    def reset_calls(self) -> None:
        """Forget the recorded calls."""
        self.calls.clear()

    # --- request handling -----------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """The aiohttp entry point: parse, dispatch through kmock's reactions, record."""
        started = time.monotonic()
        body = await raw_request.read()
        path = parse_path(raw_request.path)
        request = self._to_kmock_request(raw_request, body, path)
        self._trim_history()
        self._requests.append(request)
        try:
            response = await self._handle(request)
        except _Served as served:
            response = served.response
        except errors.ApiError as exc:
            response = _status_response(exc)
        except kmock.KubernetesNotFoundError:
            response = _status_response(errors.resource_not_found(raw_request.path))
        except kmock.KubernetesError as exc:
            response = await self._render_error(exc)
        except NotImplementedError:
            response = _status_response(errors.resource_not_found(raw_request.path))
        except (
            Exception
        ) as exc:  # a bug in the emulator or a user reaction: answer like the apiserver
            logger.exception(
                "The emulator failed to serve %s %s", raw_request.method, raw_request.path_qs
            )
            response = _status_response(errors.internal(repr(exc)))
        watch = raw_request.query.get("watch") in {"true", "1"}
        self.calls.append(
            ApiCall(
                method=raw_request.method,
                path=raw_request.path,
                query=raw_request.query_string,
                content_type=raw_request.headers.get("Content-Type", ""),
                status=response.status,
                verb=verb_of(raw_request.method, path, watch),
                group=path.group if path else None,
                plural=path.plural if path else None,
                namespace=path.namespace if path else None,
                name=path.name if path else None,
                subresource=path.subresource if path else None,
                user_agent=raw_request.headers.get("User-Agent", ""),
                started=started,
                duration=time.monotonic() - started,
            )
        )
        return response

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Bypass KubernetesEmulator._handle (kmock's own object store): only the reactions.
        if self._only_builtin_reactions() and self._is_resource_request(request):
            # What kmock would choose and do (the reaction records the request, then calls
            # _serve_resource), without filtering the history or inspecting the callback.
            self._api_reaction._requests.append(request)
            await self._serve_resource(request)
        return await kmock.RawHandler._handle(self, request)

    def _only_builtin_reactions(self) -> bool:
        """Whether no user reaction is registered (so the emulation serves resource requests).

        kmock's ``_handle`` picks a reaction by re-filtering the whole retained request history
        for each candidate (a callable criterion costs an ``inspect.signature`` per entry): that
        made the emulator's CPU grow with its history. With only the scaffold's reactions, the
        emulation's reaction (the highest priority of them) is the one that matches a resource
        request, so it is called directly; with any user reaction, kmock decides as before.
        """
        payloads, builtin = self._payloads, self._builtin_reactions
        return (
            len(payloads) == len(builtin)
            and all(a is b for a, b in zip(payloads, builtin, strict=True))
            and not self._api_reaction._disabled.is_set()
        )

    def _to_kmock_request(
        self, raw: aiohttp.web.BaseRequest, body: bytes, path: ApiPath | None
    ) -> kmock.Request:
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        resource = None if path is None else _kmock_resource(path.group, path.version, path.plural)
        action = {
            "list": kmock.action.LIST,
            "watch": kmock.action.WATCH,
            "get": kmock.action.FETCH,
            "create": kmock.action.CREATE,
            "patch": kmock.action.UPDATE,
            "delete": kmock.action.DELETE,
        }.get(verb_of(raw.method, path, raw.query.get("watch") == "true"))
        self._request_ids += 1
        return kmock.Request(
            id=self._request_ids,
            raw_request=raw,
            url=raw.url,
            method=raw.method,
            params=dict(raw.query),
            headers=dict(raw.headers),
            cookies=dict(raw.cookies),
            body=body,
            text=body.decode("utf-8", errors="replace"),
            data=data,
            action=action,
            resource=resource,
            namespace=path.namespace if path else None,
            name=path.name if path else None,
            subresource=path.subresource if path else None,
        )

    def _trim_history(self) -> None:
        for history in (self._requests, getattr(self._api_reaction, "_requests", [])):
            if len(history) > 2 * _KEPT_REQUESTS:
                del history[:-_KEPT_REQUESTS]

    @staticmethod
    def _is_resource_request(request: kmock.Request) -> bool:
        path = parse_path(request.url.path)
        return path is not None and path.plural is not None

    async def _serve_resource(self, request: kmock.Request) -> NoReturn:
        raw = request._raw_request
        path = parse_path(request.url.path)
        assert raw is not None and path is not None
        verb = verb_of(raw.method, path, raw.query.get("watch") == "true")
        fault = next((f for f in self.faults if f.matches(verb, path)), None)
        if fault is not None:
            fault.hits += 1
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if not fault.after_write:
                raise _Served(_status_response(fault.error()))
        try:
            response = await handlers.serve(raw, self.registry, path, request.body, self._closing)
        except errors.ApiError as exc:
            response = _status_response(exc)
        raise _Served(_status_response(fault.error()) if fault is not None else response)

    def _on_catalog_change(self, rtype: ResourceType, added: bool) -> None:
        key = kmock.resource(group=rtype.group, version=rtype.version, plural=rtype.plural)
        if added:
            self.resources[key] = kmock.ResourceInfo(
                kind=rtype.kind,
                singular=rtype.singular,
                namespaced=rtype.namespaced,
                verbs=set(rtype.verbs),
                shortnames=set(rtype.short_names),
                categories=set(rtype.categories),
                subresources=set(rtype.subresources),
            )
        elif key in self.resources:
            del self.resources[key]

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and str(payload.get("groupVersion", "")).startswith("/"):
            payload["groupVersion"] = payload["groupVersion"][1:]  # kmock says "/v1" for the core
        if isinstance(payload, dict):
            for entry in payload.get("resources", ()):
                if "/" in str(entry.get("name", "")):
                    # A real apiserver lists subresources without short names or categories:
                    # kubectl would otherwise find "dbm" twice.
                    entry["shortNames"], entry["categories"] = [], []
        return payload

    async def _serve_server_version(self, request: kmock.Request) -> kmock.Payload:
        return {
            "major": "1",
            "minor": "34",
            "gitVersion": "v1.34.0+alembic-operator-emulator",
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    # --- garbage collection ---------------------------------------------------------------------

    def _schedule_gc(self) -> None:
        if self._gc_busy:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._run_gc()
            return
        self._gc_busy = True
        loop.call_soon(self._run_gc, True)

    def _run_gc(self, scheduled: bool = False) -> None:
        if self._gc_busy and not scheduled:
            return
        self._gc_busy = True
        try:
            collect_garbage(self.registry)
        except Exception:
            logger.exception("The emulator's garbage collector failed")
        finally:
            self._gc_busy = False
