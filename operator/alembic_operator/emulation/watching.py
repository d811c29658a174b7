"""Watch streams (``?watch=true``) over the store's event log.

- no ``resourceVersion`` (or ``0``): the current objects as ADDED, then every change after them;
- ``resourceVersion=N``: every change after N, from the event log, with no gap; if N is older
  than the retained log, one ERROR event with a 410 Expired Status (as a real apiserver streams
  it, and as kopf expects);
- ``sendInitialEvents=true``: the current objects as ADDED, then a BOOKMARK annotated
  ``k8s.io/initial-events-end``;
- label and field selectors apply to each event; an object that starts or stops matching is
  sent as ADDED or DELETED, as the real watch cache does;
- ``timeoutSeconds`` ends the stream; so do the server stopping and the client going away.

Every watch of a type sends the same bytes for a change it sees (only the event type may
differ), so each change's object is JSON-encoded once per apiVersion and the bytes are shared
(a bounded cache of the latest changes); selectors still apply per watch.

:func:`follow` gives in-process callers (the local Job executor) the same stream as an async
iterator, without HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp.web

from alembic_operator.emulation import errors
from alembic_operator.emulation.catalog import ResourceType
from alembic_operator.emulation.registry import Registry
from alembic_operator.emulation.routing import ApiPath
from alembic_operator.emulation.selectors import (
    FieldRequirement,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from alembic_operator.emulation.store import Store, WatchEvent


class _Filter:
    def __init__(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str | None,
        params: Mapping[str, str],
    ) -> None:
        self.rtype = rtype
        self.namespace = namespace if rtype.namespaced else None
        self.labels = parse_label_selector(params.get("labelSelector"))
        self.fields = parse_field_selector(params.get("fieldSelector"), rtype.group, rtype.plural)
        if name is not None:
            self.fields.append(FieldRequirement("metadata.name", True, name))

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)

    def kind_of(self, event: WatchEvent) -> str | None:
        """The event type this watch sees for a change (None: not sent)."""
        if event.storage_key != self.rtype.storage_key:
            return None
        now, before = self.matches(event.obj), self.matches(event.old)
        if event.type == "ADDED":
            return "ADDED" if now else None
        if event.type == "DELETED":
            return "DELETED" if now or before else None
        return {(True, True): "MODIFIED", (True, False): "ADDED", (False, True): "DELETED"}.get(
            (now, before)
        )


# A change as one watch sees it: its event type and the stored event (encoded on demand).
_Change = tuple[str, WatchEvent]

_ENCODED_KEPT = 4096
_encoded: weakref.WeakKeyDictionary[Store, dict[tuple[int, str], bytes]] = (
    weakref.WeakKeyDictionary()
)


def _as_dict(change: _Change, api_version: str) -> dict[str, Any]:
    kind, event = change
    return {"type": kind, "object": {**event.obj, "apiVersion": api_version}}


def _encode(store: Store, change: _Change, api_version: str) -> bytes:
    """The change as one JSON line; the object is encoded once for every watch that sends it."""
    kind, event = change
    cache = _encoded.setdefault(store, {})
    body = cache.get((event.rv, api_version))
    if body is None:
        obj = {**event.obj, "apiVersion": api_version}
        body = json.dumps(obj, separators=(",", ":")).encode()
        cache[(event.rv, api_version)] = body
        if len(cache) > _ENCODED_KEPT:
            del cache[next(iter(cache))]
    return b'{"type":"' + kind.encode() + b'","object":' + body + b"}\n"


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


class _Stream:
    """One watch: where it starts, what it sends first, and the loop that follows the log."""

    def __init__(
        self,
        registry: Registry,
        selector: _Filter,
        params: Mapping[str, str],
        closing: asyncio.Event,
    ) -> None:
        since = params.get("resourceVersion") or "0"
        if not since.isdigit():
            raise errors.bad_request(f"invalid resourceVersion {since!r}")
        self.registry, self.selector, self.closing = registry, selector, closing
        self.send_initial = params.get("sendInitialEvents") == "true"
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        self.loop = asyncio.get_running_loop()
        self.deadline = None if timeout is None else self.loop.time() + timeout
        # The starting point and the initial events are taken synchronously: no write slips in.
        self.last = int(since)
        self.initial: list[dict[str, Any]] = []
        self.expired: errors.ApiError | None = None
        if since == "0" or self.send_initial:
            self.last = registry.store.resource_version
            rtype = selector.rtype
            self.initial = [
                {"type": "ADDED", "object": {**obj, "apiVersion": rtype.api_version}}
                for obj in registry.store.items(rtype.storage_key, selector.namespace)
                if selector.matches(obj)
            ]
        else:
            try:
                registry.store.events_after(self.last)
            except errors.ApiError as exc:
                self.expired = exc

    async def events(self, alive: Callable[[], bool]) -> AsyncIterator[dict[str, Any] | _Change]:
        """The watch events, until the deadline, ``closing`` or ``alive()`` turning false.

        Changes from the log come as :data:`_Change` (so the HTTP watch can share their
        encoding); the initial events, bookmarks and errors as dicts.
        """
        if self.expired is not None:
            yield {"type": "ERROR", "object": self.expired.status()}
            return
        for added in self.initial:
            yield added
        if self.send_initial:
            rtype = self.selector.rtype
            annotations = {"k8s.io/initial-events-end": "true"}
            meta = {"resourceVersion": str(self.last), "annotations": annotations}
            bookmark = {"apiVersion": rtype.api_version, "kind": rtype.kind, "metadata": meta}
            yield {"type": "BOOKMARK", "object": bookmark}
        while not self.closing.is_set():
            try:
                events = self.registry.store.events_after(self.last)
            except errors.ApiError as exc:
                yield {"type": "ERROR", "object": exc.status()}
                return
            for event in events:
                self.last = event.rv
                kind = self.selector.kind_of(event)
                if kind is not None:
                    yield kind, event
            if not events and not await self._wait(alive):
                return

    async def _wait(self, alive: Callable[[], bool]) -> bool:
        """Wait for the next write (at most a second); False when the stream should end."""
        changed = self.registry.store.changed()
        remaining = 1.0 if self.deadline is None else min(1.0, self.deadline - self.loop.time())
        if remaining <= 0 or not alive():
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=remaining)
        return True


async def follow(
    registry: Registry,
    rtype: ResourceType,
    *,
    namespace: str | None = None,
    params: Mapping[str, str] | None = None,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Watch in-process, with the HTTP watch's semantics (``params``: resourceVersion, selectors).

    Yields ``{"type": ..., "object": ...}`` events; ends when ``stop`` is set or on
    ``timeoutSeconds``. The objects are shared with the store: copy before changing them.
    """
    params = params or {}
    selector = _Filter(rtype, namespace, None, params)
    stream = _Stream(registry, selector, params, stop or asyncio.Event())
    api_version = rtype.api_version
    async for event in stream.events(lambda: True):
        yield event if isinstance(event, dict) else _as_dict(event, api_version)


async def serve_watch(
    raw: aiohttp.web.BaseRequest,
    registry: Registry,
    rtype: ResourceType,
    path: ApiPath,
    closing: asyncio.Event,
) -> aiohttp.web.StreamResponse:
    """Stream watch events until the timeout, the server stopping or the client leaving."""
    params = dict(raw.query)
    selector = _Filter(rtype, path.namespace, path.name, params)  # a 400 is answered before
    stream = _Stream(registry, selector, params, closing)
    response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(raw)
    try:
        async for event in stream.events(
            lambda: raw.transport is not None and not raw.transport.is_closing()
        ):
            if isinstance(event, dict):
                await response.write(_line(event))
            else:
                await response.write(_encode(registry.store, event, rtype.api_version))
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away
    return response
