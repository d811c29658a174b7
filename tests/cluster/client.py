"""Test helpers: a thin JSON client over aiohttp for the real apiserver, watch readers, polling.

Test-only. :class:`Client` answers ``(status, body)`` for any request and ``ok`` for one that
must succeed; its session carries the cluster's CA and the caller's credentials (see
:func:`tests.cluster.fixtures.admin_session`).
"""

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
