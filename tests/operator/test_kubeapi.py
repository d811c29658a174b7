"""The Kubernetes adapter's HTTP behaviour against a scripted server: errors, content types,
the credential refresh on 401, the in-flight bound and the two caches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.config.models import Cluster, User

from alembic_operator import __version__
from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.errors import (
    AlreadyExists,
    ApiError,
    ApiUnavailable,
    Conflict,
    Forbidden,
    NotFound,
)


@dataclass
class Server:
    """Answers every request with ``answer(request)``; records what it got."""

    answer: Callable[[web.Request], Any] = lambda _r: web.json_response({})
    seen: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.seen.append(
            (
                request.method,
                request.path_qs,
                request.headers.get("Content-Type", ""),
                request.headers.get("Authorization", ""),
                body,
            )
        )
        result = self.answer(request)
        return await result if asyncio.iscoroutine(result) else result


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    scripted = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    scripted.url = f"http://127.0.0.1:{port}"
    try:
        yield scripted
    finally:
        await runner.cleanup()


def creds(url: str, token: str = "one") -> SingleConfig:
    config = KubeConfig.from_one(cluster=Cluster(server=url), user=User(token=token)).get()
    assert config is not None
    return config


def status(code: int, reason: str = "") -> web.Response:
    return web.json_response({"kind": "Status", "reason": reason, "message": "m"}, status=code)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (status(404, "NotFound"), NotFound),
        (status(409, "AlreadyExists"), AlreadyExists),
        (status(409, "Conflict"), Conflict),
        (status(403, "Forbidden"), Forbidden),
        (status(429, "TooManyRequests"), ApiUnavailable),
        (status(503, "ServiceUnavailable"), ApiUnavailable),
        (web.Response(status=500, text="not json"), ApiUnavailable),
        (status(422, "Invalid"), ApiError),
    ],
)
async def test_errors_are_translated(server: Server, answer: web.Response, error: type) -> None:
    server.answer = lambda _r: answer
    api = KubeApi(creds(server.url))
    try:
        with pytest.raises(error) as raised:
            await api.create_job("ns", {"metadata": {"name": "j"}})
        assert type(raised.value) is error
        assert raised.value.status == answer.status
    finally:
        await api.close()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param(status(422, "Invalid"), Conflict, id="failed-test-op-422-conflict"),
        pytest.param(status(409, "Conflict"), Conflict, id="409-conflict"),
        pytest.param(status(404, "NotFound"), NotFound, id="404-not-found"),
    ],
)
async def test_a_deployment_patch_whose_test_fails_is_a_conflict(
    server: Server, answer: web.Response, error: type
) -> None:
    """The apiserver answers a JSON patch whose ``test`` failed with 422 Invalid."""
    server.answer = lambda _r: answer
    api = KubeApi(creds(server.url))
    try:
        with pytest.raises(error) as raised:
            await api.patch_deployment("ns", "d", [{"op": "test", "path": "/a", "value": 1}])
        assert type(raised.value) is error
    finally:
        await api.close()


async def test_not_found_reads_are_none(server: Server) -> None:
    server.answer = lambda _r: status(404, "NotFound")
    api = KubeApi(creds(server.url))
    try:
        assert await api.get_job("ns", "j") is None
        assert await api.get_deployment("ns", "d") is None
        assert await api.get_migration("ns", "m") is None
        assert await api.read_secret_keys("ns", "s") is None
        await api.delete_job("ns", "j")
    finally:
        await api.close()


async def test_unreachable_is_unavailable() -> None:
    api = KubeApi(creds("http://127.0.0.1:9"))  # discard port: refused
    try:
        with pytest.raises(ApiUnavailable):
            await api.get_job("ns", "j")
    finally:
        await api.close()


async def test_paths_verbs_and_content_types(server: Server) -> None:
    server.answer = lambda r: web.json_response({"items": [], "metadata": {"resourceVersion": "7"}})
    api = KubeApi(creds(server.url))
    try:
        await api.patch_migration_status("ns", "m", status={"phase": "x"}, resource_version="6")
        await api.patch_deployment(
            "ns", "d", [{"op": "test", "path": "/spec/paused", "value": True}]
        )
        await api.list_job_pods("ns", "j")
        await api.delete_job("ns", "j")
        await api.create_job("ns", {"metadata": {"name": "j"}})
    finally:
        await api.close()
    (status_patch, deployment_patch, pods, delete, create) = server.seen
    assert status_patch[:3] == (
        "PATCH",
        "/apis/alembic-operator.dev/v1alpha1/namespaces/ns/databasemigrations/m/status",
        "application/merge-patch+json",
    )
    assert json.loads(status_patch[4]) == {
        "metadata": {"resourceVersion": "6"},
        "status": {"phase": "x"},
    }
    assert deployment_patch[:3] == (
        "PATCH",
        "/apis/apps/v1/namespaces/ns/deployments/d",
        "application/json-patch+json",
    )
    assert json.loads(deployment_patch[4]) == [
        {"op": "test", "path": "/spec/paused", "value": True}
    ]
    assert pods[:2] == ("GET", "/api/v1/namespaces/ns/pods?labelSelector=job-name%3Dj")
    assert delete[:2] == (
        "DELETE",
        "/apis/batch/v1/namespaces/ns/jobs/j?propagationPolicy=Background",
    )
    assert create[:3] == ("POST", "/apis/batch/v1/namespaces/ns/jobs", "application/json")
    assert {s[3] for s in server.seen} == {"Bearer one"}


async def test_a_401_reloads_the_credentials_once(server: Server) -> None:
    server.answer = lambda r: (
        web.json_response({"metadata": {}})
        if r.headers.get("Authorization") == "Bearer two"
        else status(401, "Unauthorized")
    )
    reloads = []

    def reload() -> SingleConfig:
        reloads.append(1)
        return creds(server.url, token="two")

    api = KubeApi(creds(server.url), reload=reload)
    try:
        assert await api.get_job("ns", "j") == {"metadata": {}}
        assert reloads == [1]
        server.answer = lambda _r: status(401, "Unauthorized")
        with pytest.raises(Forbidden):  # still refused after one refresh: reported
            await api.get_job("ns", "j")
        assert reloads == [1, 1]
    finally:
        await api.close()


async def test_requests_in_flight_are_bounded(server: Server) -> None:
    now, peak = 0, 0

    async def slow(_r: web.Request) -> web.Response:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.05)
        now -= 1
        return web.json_response({"metadata": {}})

    server.answer = slow
    api = KubeApi(creds(server.url), max_in_flight=3)
    try:
        await asyncio.gather(*(api.get_job("ns", f"j{i}") for i in range(12)))
    finally:
        await api.close()
    assert peak == 3


async def test_migration_bodies_come_from_the_watch_until_a_conflict(server: Server) -> None:
    stored = {"metadata": {"namespace": "ns", "name": "m", "resourceVersion": "9"}}
    server.answer = lambda r: (
        status(409, "Conflict") if r.method == "PATCH" else web.json_response(stored)
    )
    api = KubeApi(creds(server.url))
    seen = {"metadata": {"namespace": "ns", "name": "m", "resourceVersion": "5"}}
    try:
        api.migration_seen({"metadata": {**seen["metadata"], "resourceVersion": "4"}})
        api.migration_seen(seen)  # the stream's order, not the numbers', decides
        assert await api.get_migration("ns", "m") == seen
        assert server.seen == []
        with pytest.raises(Conflict):
            await api.patch_migration_status("ns", "m", status={}, resource_version="5")
        assert await api.get_migration("ns", "m") == stored  # read from the API again
        api.migration_gone("ns", "m")
        assert await api.get_migration("ns", "m") == stored
        assert [s[0] for s in server.seen] == ["PATCH", "GET", "GET"]
    finally:
        await api.close()


async def test_secret_key_names_are_reused_briefly(server: Server) -> None:
    server.answer = lambda _r: web.json_response({"data": {"url": "c2VjcmV0"}})
    api = KubeApi(creds(server.url))
    try:
        assert await api.read_secret_keys("ns", "s") == {"url"}
        assert await api.read_secret_keys("ns", "s") == {"url"}
        assert len(server.seen) == 1
    finally:
        await api.close()


async def test_requests_name_the_operator_and_logs_are_capped(server: Server) -> None:
    """The User-Agent tells our requests from kopf's; a log is cut at ``limit_bytes``."""
    agents: list[str] = []

    def answer(request: web.Request) -> web.Response:
        agents.append(request.headers.get("User-Agent", ""))
        return web.Response(text="line one\n" + "x" * 5000 + "\n", content_type="text/plain")

    server.answer = answer
    api = KubeApi(creds(server.url))
    try:
        text = await api.read_pod_log("ns", "p", container="migrate", limit_bytes=100, tail_lines=3)
    finally:
        await api.close()
    assert text.startswith("line one\nxxx") and len(text.encode()) == 100
    path, _sep, query = server.seen[0][1].partition("?")
    assert path == "/api/v1/namespaces/ns/pods/p/log"
    assert {"tailLines=3", "container=migrate", "follow=false"} <= set(query.split("&"))
    assert agents == [f"alembic-operator/{__version__}"]


async def test_a_token_file_is_read_again_on_a_401(server: Server, tmp_path: Path) -> None:
    """In a pod the ServiceAccount token rotates: the file is read again, the call succeeds."""
    token = tmp_path / "token"
    token.write_text("old")
    server.answer = lambda r: (
        web.json_response({"metadata": {"name": "j"}})
        if r.headers.get("Authorization") == "Bearer new"
        else status(401, "Unauthorized")
    )
    config = KubeConfig.from_one(
        cluster=Cluster(server=server.url), user=User(token_file=str(token))
    ).get()
    assert config is not None
    api = KubeApi(config)
    try:
        token.write_text("new")  # rotated after the first read of the file
        assert await api.get_job("ns", "j") == {"metadata": {"name": "j"}}
    finally:
        await api.close()
