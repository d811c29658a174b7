"""A fault-injecting HTTPS proxy in front of the real apiserver, for what it cannot be asked for.

Test-only. The operator under test is pointed at :class:`FaultProxy` instead of the apiserver
(same CA: the proxy's serving certificate is signed by the cluster's CA for 127.0.0.1, so the
client sees nothing different). Every request is forwarded unchanged — headers, bearer token,
body — and every answer streamed back unchanged (watches included), except where a
:class:`Fault` matches: then the request is answered with the fault's status instead of being
forwarded (``after_write=False``), or forwarded and its answer replaced by the error (a write
whose response is lost, ``after_write=True``), or a watch is cut after its first events
(``drop_watch_after``), or a watch silently loses events of one type (``hide_events``, e.g.
``"DELETED"``: a watch that misses a deletion, checked per event so it also applies to the
watches already open). Each request is recorded as an :class:`ApiCall` (verb, resource, user
agent, status), which is how tests and benchmarks count the operator's API requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import web

from tests.cluster.controlplane import free_port
from tests.cluster.pki import CertificateAuthority

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "upgrade",
}


@dataclass(frozen=True)
class ApiPath:
    """The parts of an API path that faults and counts match on."""

    group: str
    namespace: str | None
    plural: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str) -> ApiPath:
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return ApiPath("", None, None, None, None)
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return ApiPath(group, namespace, plural, name, subresource)


def verb_of(method: str, path: ApiPath, query: Any) -> str:
    if method == "GET":
        if str(query.get("watch", "")).lower() in ("true", "1"):
            return "watch"
        return "get" if path.name else "list"
    if method == "DELETE":
        return "delete" if path.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


@dataclass
class Fault:
    """A failure to inject into the first ``times`` matching requests (None: every one).

    ``status``/``reason``/``message`` make the answer (a ``metav1.Status``); ``after_write``
    forwards the request first (the write happens, its answer is lost); ``delay`` waits before
    answering; ``drop_watch_after`` (watches only) forwards the watch and cuts the stream after
    that many events instead of answering an error; ``hide_events`` (watches only) keeps every
    stream open and drops each event of that type (``times`` counts the events dropped).
    ``user_agent`` matches only requests whose User-Agent starts with it (e.g. ``kopf/``: kopf's
    watches, not the operator's own calls). ``hold`` keeps the request until the event is set,
    then forwards it unchanged (no error): a slow answer without timing luck, or a request held in
    flight while the test changes the cluster under it (a write based on a stale read).
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
    drop_watch_after: int | None = None
    hide_events: str | None = None
    user_agent: str | None = None
    hold: asyncio.Event | None = None
    times: int | None = 1
    hits: int = 0

    def matches(self, verb: str, path: ApiPath, user_agent: str = "") -> bool:
        wanted = (self.verb, self.plural, self.name, self.subresource)
        actual = (verb, path.plural, path.name, path.subresource)
        return (
            (self.times is None or self.hits < self.times)
            and (self.user_agent is None or user_agent.startswith(self.user_agent))
            and all(w is None or w == a for w, a in zip(wanted, actual, strict=True))
        )

    def response(self) -> web.Response:
        try:
            reason = self.reason or HTTPStatus(self.status).phrase.replace(" ", "")
        except ValueError:
            reason = self.reason or "Unknown"
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": reason,
            "code": self.status,
        }
        return web.json_response(body, status=self.status)


@dataclass(frozen=True)
class ApiCall:
    """One request that went through the proxy."""

    verb: str
    group: str
    namespace: str | None
    plural: str | None
    name: str | None
    subresource: str | None
    user_agent: str
    status: int
    at: float
    injected: bool = False

    @property
    def is_write(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete", "deletecollection")


@dataclass
class FaultProxy:
    """Forward to ``upstream`` (the apiserver), injecting :attr:`faults`; record :attr:`calls`."""

    upstream: str
    ca: CertificateAuthority
    faults: list[Fault] = field(default_factory=list)
    calls: list[ApiCall] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def inject_fault(self, **fields: Any) -> Fault:
        fault = Fault(**fields)
        self.faults.append(fault)
        return fault

    def count(self, **criteria: Any) -> int:
        return sum(all(getattr(c, k) == v for k, v in criteria.items()) for c in self.calls)

    @property
    def writes(self) -> list[ApiCall]:
        return [c for c in self.calls if c.is_write]

    async def start(self) -> FaultProxy:
        upstream_ssl = ssl.create_default_context(cafile=str(self.ca.cert))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=upstream_ssl, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        pair = self.ca.issue(
            "fault-proxy", common_name="fault-proxy", hosts=("127.0.0.1",), server=True
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(pair.cert), str(pair.key))
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context).start()
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()
        await self._session.close()

    def _fault_for(self, verb: str, path: ApiPath, user_agent: str) -> Fault | None:
        for fault in self.faults:
            if fault.hide_events is None and fault.matches(verb, path, user_agent):
                fault.hits += 1
                return fault
        return None

    def _hides(self, path: ApiPath, line: bytes) -> bool:
        """Whether a ``hide_events`` fault drops this watch event (one JSON object a line)."""
        hiding = [f for f in self.faults if f.hide_events and f.matches("watch", path)]
        if not hiding:
            return False
        try:
            kind = json.loads(line).get("type")
        except ValueError:
            return False
        for fault in hiding:
            if kind == fault.hide_events:
                fault.hits += 1
                return True
        return False

    def _record(
        self, request: web.Request, verb: str, path: ApiPath, status: int, *, injected: bool = False
    ) -> None:
        self.calls.append(
            ApiCall(
                verb=verb,
                group=path.group,
                namespace=path.namespace,
                plural=path.plural,
                name=path.name,
                subresource=path.subresource,
                user_agent=request.headers.get("User-Agent", ""),
                status=status,
                at=time.monotonic(),
                injected=injected,
            )
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = parse_path(request.path)
        verb = verb_of(request.method, path, request.query)
        fault = self._fault_for(verb, path, request.headers.get("User-Agent", ""))
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.hold is not None:
            await fault.hold.wait()
            fault = None  # held, then forwarded as it came
        if fault is not None and not fault.after_write and fault.drop_watch_after is None:
            self._record(request, verb, path, fault.status, injected=True)
            return fault.response()
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            data=body or None,
            headers=headers,
        ) as upstream:
            if fault is not None and fault.after_write:
                await upstream.read()
                self._record(request, verb, path, fault.status, injected=True)
                return fault.response()
            self._record(request, verb, path, upstream.status)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    response.headers[key] = value
            try:
                await response.prepare(request)
            except ConnectionResetError:  # the client left (e.g. an operator stopping)
                return response
            events = 0
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientPayloadError):
                if verb == "watch":
                    async for line in upstream.content:
                        if self._hides(path, line):
                            continue
                        await response.write(line)
                        events += 1
                        if fault is not None and events >= (fault.drop_watch_after or 0):
                            break
                else:
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
            with contextlib.suppress(ConnectionResetError):  # the client left as it ended
                await response.write_eof()
            return response
