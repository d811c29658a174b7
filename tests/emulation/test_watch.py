"""Watches: initial state, resume from a resourceVersion with no gap, selectors, timeouts, 410."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.registry import Registry
from alembic_operator.emulation.store import Store
from alembic_operator.emulation.watching import follow
from tests.emulation.helpers import (
    CONFIGMAPS,
    MERGE,
    WIDGETS,
    Client,
    read_watch,
    widget,
)


def _summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


async def test_watch_resumes_from_the_list_resource_version_with_no_gap(
    client: Client, session: aiohttp.ClientSession
) -> None:
    await client.ok("POST", WIDGETS, widget("before"))
    listed = await client.ok("GET", WIDGETS)
    rv = listed["metadata"]["resourceVersion"]
    # Writes between the list and the watch: a stock kmock loses these.
    await client.ok("POST", WIDGETS, widget("between"))
    await client.ok("PATCH", f"{WIDGETS}/before", {"spec": {"size": 2}}, content_type=MERGE)
    await client.ok("DELETE", f"{WIDGETS}/between")
    events = await read_watch(
        session, WIDGETS, {"resourceVersion": rv}, until=lambda ev: len(ev) >= 3
    )
    assert _summary(events) == [
        ("ADDED", "between"),
        ("MODIFIED", "before"),
        ("DELETED", "between"),
    ]
    assert events[1]["object"]["spec"] == {"size": 2}
    assert events[0]["object"]["kind"] == "Widget"
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


async def test_each_event_carries_the_object_at_that_point(
    client: Client, session: aiohttp.ClientSession
) -> None:
    created = await client.ok("POST", WIDGETS, widget("w", size=0))
    for size in (1, 2, 3):
        await client.ok("PATCH", f"{WIDGETS}/w", {"spec": {"size": size}}, content_type=MERGE)
    params = {"resourceVersion": created["metadata"]["resourceVersion"]}
    events = await read_watch(session, WIDGETS, params, until=lambda ev: len(ev) >= 3)
    assert [e["object"]["spec"]["size"] for e in events] == [1, 2, 3]


async def test_watch_without_resource_version_sends_current_objects_then_streams(
    client: Client, session: aiohttp.ClientSession
) -> None:
    await client.ok("POST", WIDGETS, widget("old"))

    async def write_later() -> None:
        await client.ok("POST", WIDGETS, widget("new"))

    events = await read_watch(
        session, WIDGETS, {}, until=lambda ev: len(ev) >= 2, on_open=write_later
    )
    assert _summary(events) == [("ADDED", "old"), ("ADDED", "new")]


async def test_send_initial_events_ends_with_a_bookmark(
    client: Client, session: aiohttp.ClientSession
) -> None:
    await client.ok("POST", WIDGETS, widget("old"))
    params = {
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
    }
    events = await read_watch(session, WIDGETS, params, until=lambda ev: len(ev) >= 2)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_label_selector_on_watch_turns_transitions_into_added_and_deleted(
    client: Client, session: aiohttp.ClientSession
) -> None:
    start = await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c", "labels": {"app": "x"}}})
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "other", "labels": {"app": "y"}}})
    for labels in ({"app": "y"}, {"app": "x"}, {"app": "x", "more": "1"}):
        await client.ok(
            "PATCH", f"{CONFIGMAPS}/c", {"metadata": {"labels": labels}}, content_type=MERGE
        )
    await client.ok("DELETE", f"{CONFIGMAPS}/c")
    params = {"resourceVersion": start["metadata"]["resourceVersion"], "labelSelector": "app=x"}
    events = await read_watch(session, CONFIGMAPS, params, until=lambda ev: len(ev) >= 4)
    assert _summary(events) == [
        ("DELETED", "c"),
        ("ADDED", "c"),
        ("MODIFIED", "c"),
        ("DELETED", "c"),
    ]


async def test_watch_of_one_object_by_field_selector_and_by_url(
    client: Client, session: aiohttp.ClientSession
) -> None:
    start = await client.ok("POST", WIDGETS, widget("a"))
    await client.ok("POST", WIDGETS, widget("b"))
    await client.ok("PATCH", f"{WIDGETS}/a", {"spec": {"size": 5}}, content_type=MERGE)
    rv = start["metadata"]["resourceVersion"]
    by_field = await read_watch(
        session,
        WIDGETS,
        {"resourceVersion": rv, "fieldSelector": "metadata.name=a"},
        until=lambda ev: len(ev) >= 1,
        within=0.5,
    )
    by_url = await read_watch(
        session, f"{WIDGETS}/a", {"resourceVersion": rv}, until=lambda ev: len(ev) >= 1, within=0.5
    )
    assert _summary(by_field) == _summary(by_url) == [("MODIFIED", "a")]


async def test_namespaced_watch_sees_only_its_namespace(
    client: Client, session: aiohttp.ClientSession
) -> None:
    listed = await client.ok("GET", CONFIGMAPS)
    await client.ok(
        "POST", "/api/v1/namespaces/kube-system/configmaps", {"metadata": {"name": "elsewhere"}}
    )
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "here"}})
    params = {"resourceVersion": listed["metadata"]["resourceVersion"]}
    events = await read_watch(session, CONFIGMAPS, params, until=lambda ev: len(ev) >= 1)
    assert _summary(events) == [("ADDED", "here")]
    everywhere = await read_watch(
        session, "/api/v1/configmaps", params, until=lambda ev: len(ev) >= 2
    )
    assert _summary(everywhere) == [("ADDED", "elsewhere"), ("ADDED", "here")]


async def test_timeout_seconds_ends_the_stream(
    client: Client, session: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = await read_watch(session, WIDGETS, {"timeoutSeconds": "1"}, within=5)
    assert events == []
    assert 0.9 <= loop.time() - started < 3


async def test_too_old_resource_version_is_410_in_the_stream() -> None:
    async with (
        ApiServer(registry=Registry(store=Store(max_events=10), validator_factory=None)) as api,
        aiohttp.ClientSession(api.base_url) as session,
    ):
        client = Client(session)
        for i in range(30):
            await client.ok("POST", CONFIGMAPS, {"metadata": {"name": f"c{i}"}})
        events = await read_watch(session, CONFIGMAPS, {"resourceVersion": "1"}, within=2)
    assert [e["type"] for e in events] == ["ERROR"]
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


async def test_stopping_the_server_ends_open_watches(
    api: ApiServer, session: aiohttp.ClientSession
) -> None:
    opened = asyncio.Event()

    async def mark_open() -> None:
        opened.set()

    task = asyncio.create_task(read_watch(session, WIDGETS, {}, within=10, on_open=mark_open))
    await asyncio.wait_for(opened.wait(), 5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await api.stop()
    await asyncio.wait_for(task, 3)
    assert loop.time() - started < 3


async def test_in_process_writes_and_follow(api: ApiServer, session: aiohttp.ClientSession) -> None:
    """What the local Job executor does: registry writes and an in-process watch."""
    pods = api.resource_type("pods")
    stop = asyncio.Event()
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        async for event in follow(api.registry, pods, namespace="default", stop=stop):
            seen.append((event["type"], event["object"]["status"].get("phase", "")))
            if len(seen) == 2:
                stop.set()

    task = asyncio.create_task(watch())
    listed = await Client(session).ok("GET", "/api/v1/namespaces/default/pods")
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    api.registry.create(pods, "default", pod)
    status = {"status": {"phase": "Succeeded"}}
    api.registry.patch(pods, "default", "p", MERGE, status, subresource="status")
    await asyncio.wait_for(task, 5)
    assert seen == [("ADDED", "Pending"), ("MODIFIED", "Succeeded")]
    params = {"resourceVersion": listed["metadata"]["resourceVersion"]}
    over_http = await read_watch(
        session, "/api/v1/namespaces/default/pods", params, until=lambda ev: len(ev) >= 2
    )
    assert _summary(over_http) == [("ADDED", "p"), ("MODIFIED", "p")]
