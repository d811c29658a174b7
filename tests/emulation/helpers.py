"""Test helpers: a thin JSON client over aiohttp, watch readers, polling, sample resources."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"

WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
GADGETS = "/apis/example.com/v1/namespaces/default/gadgets"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
PODS = "/api/v1/namespaces/default/pods"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def crd(
    plural: str, kind: str, *, status: bool = True, short: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A minimal CRD in example.com (schema preserving unknown fields)."""
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "shortNames": list(short),
            },
            "versions": [version],
        },
    }


WIDGET_CRD = crd("widgets", "Widget", short=("wdg",))
GADGET_CRD = crd("gadgets", "Gadget", status=False)


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec or {"size": 1},
    }


def job(name: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36"}],
                }
            }
        },
    }
    body.update(extra)
    return body


def deployment(name: str, image: str = "app:1") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


class Client:
    """JSON requests answering ``(status, body)``; bodies are sent with explicit content types."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method, path, data=data, headers=headers, params=params
        ) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        return await self.request("PUT", path, body, **kw)

    async def patch(
        self, path: str, body: Any, content_type: str = MERGE, **kw: Any
    ) -> tuple[int, Any]:
        return await self.request("PATCH", path, body, content_type=content_type, **kw)

    async def delete(self, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        return await self.request("DELETE", path, body, params=params or None)

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        """A request that must succeed; returns the body."""
        status, answer = await self.request(method, path, body, **kw)
        assert 200 <= status < 300, (status, answer)
        assert isinstance(answer, dict)
        return answer


async def read_watch(
    session: aiohttp.ClientSession,
    path: str,
    params: dict[str, str],
    *,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
    within: float = 5.0,
    on_open: Callable[[], Awaitable[None]] | None = None,
) -> list[dict[str, Any]]:
    """Watch events until ``until(events)`` holds, the stream ends, or the deadline passes."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    async with session.get(path, params={"watch": "true", **params}) as response:
        assert response.status == 200, await response.text()
        if on_open is not None:
            await on_open()
        while until is None or not until(events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = await asyncio.wait_for(response.content.readline(), remaining)
            except TimeoutError:
                break
            if not line:
                break
            events.append(json.loads(line))
    return events


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Poll ``check`` until it returns True; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
