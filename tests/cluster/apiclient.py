"""The test harness's HTTP client for the apiserver: JSON requests, watches and informers.

Test-only. Everything the test kubelet (:mod:`.kubelet`) and the tests send to the real
apiserver goes through :class:`ApiClient` (TLS with the cluster's CA and a client certificate
or a bearer token; retries on 429/5xx and connection errors; errors as
:class:`KubeletApiError`), and :meth:`ApiClient.inform` is the list-then-watch loop a real
kubelet/controller-manager informer runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

USER_AGENT = "alembic-operator-test-kubelet/0.1"
MERGE_PATCH = "application/merge-patch+json"
_RETRYABLE = frozenset({429, 500, 502, 503, 504})


class KubeletApiError(Exception):
    """The apiserver answered an error (after retries for 429/5xx)."""

    def __init__(self, code: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)[:200]
        super().__init__(f"{code}: {message}")
        self.code = code
        self.body = body


def job_path(namespace: str, name: str) -> str:
    """The API path of a batch/v1 Job."""
    return f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"


def pod_path(namespace: str, name: str) -> str:
    """The API path of a v1 Pod."""
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


class ApiClient:
    """JSON over HTTP with retries on 429/5xx and connection errors."""

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        token: str | None = None,
        retries: int = 8,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.ssl_context = ssl_context
        self.token = token
        self.user_agent = user_agent
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> ApiClient:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None),
            connector=aiohttp.TCPConnector(ssl=self.ssl_context or False, limit=64),
        )
        return self

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Any:
        assert self.session is not None, "the kubelet is not started"
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        last: Exception | None = None
        for attempt in range(self.retries):
            try:
                async with self.session.request(
                    method,
                    self.base_url + path,
                    data=data,
                    headers=headers,
                    params=params,
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as response:
                    text = await response.text()
                    try:
                        answer = json.loads(text) if text else None
                    except ValueError:
                        answer = text
                    if response.status < 400:
                        return answer
                    last = KubeletApiError(response.status, answer)
                    if response.status not in _RETRYABLE:
                        raise last
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = exc
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        assert last is not None
        raise last

    async def watch(
        self, path: str, resource_version: str, params: Mapping[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        assert self.session is not None, "the kubelet is not started"
        query = {
            **params,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        async with self.session.get(self.base_url + path, params=query) as response:
            if response.status != 200:
                raise KubeletApiError(response.status, await response.text())
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)

    async def inform(
        self,
        path: str,
        params: Mapping[str, str],
        on_event: Callable[[str, dict[str, Any]], None],
        on_listed: Callable[[list[dict[str, Any]]], None],
        stopping: Callable[[], bool],
    ) -> None:
        """List, then watch from the list's resourceVersion; relist on 410 Gone.

        Runs until ``stopping()`` is true (checked between watches) or the task is cancelled.
        """
        resource_version: str | None = None
        while not stopping():
            try:
                if resource_version is None:
                    listing = await self.request("GET", path, params=params)
                    resource_version = str(listing["metadata"]["resourceVersion"])
                    on_listed(list(listing.get("items") or []))
                async for event in self.watch(path, resource_version, params):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            resource_version = None
                        break
                    resource_version = str(
                        (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                    )
                    if event.get("type") != "BOOKMARK":
                        on_event(str(event.get("type")), obj)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not stopping():
                    logger.debug("watch of %s interrupted: %s", path, exc)
                    await asyncio.sleep(0.1)
