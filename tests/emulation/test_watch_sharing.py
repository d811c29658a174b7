"""Watches share each change's encoding: same bytes for all, selectors still apply per watch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from alembic_operator.emulation.apiserver import ApiServer
from tests.emulation.helpers import MERGE, WIDGET_CRD, WIDGETS, Client, widget

# Watch parameters -> the (type, name) events it must see for the writes in _write_changes.
WATCHES: dict[str, tuple[str, dict[str, str], list[tuple[str, str]]]] = {
    "all": (
        WIDGETS,
        {},
        [
            ("ADDED", "w1"),
            ("ADDED", "w2"),
            ("MODIFIED", "w1"),
            ("MODIFIED", "w2"),
            ("DELETED", "w1"),
        ],
    ),
    "label a=1": (
        WIDGETS,
        {"labelSelector": "a=1"},
        [("ADDED", "w1"), ("DELETED", "w1"), ("ADDED", "w2")],
    ),
    "one by field": (
        WIDGETS,
        {"fieldSelector": "metadata.name=w2"},
        [("ADDED", "w2"), ("MODIFIED", "w2")],
    ),
    "another namespace": ("/apis/example.com/v1/namespaces/other/widgets", {}, []),
    "all namespaces": (
        "/apis/example.com/v1/widgets",
        {},
        [
            ("ADDED", "w1"),
            ("ADDED", "w2"),
            ("MODIFIED", "w1"),
            ("MODIFIED", "w2"),
            ("DELETED", "w1"),
        ],
    ),
}


async def _write_changes(client: Client) -> None:
    for name in ("w1", "w2"):
        body = widget(name)
        body["metadata"]["labels"] = {"a": "1"} if name == "w1" else {"a": "2"}
        await client.ok("POST", WIDGETS, body)
    await client.ok(
        "PATCH", f"{WIDGETS}/w1", {"metadata": {"labels": {"a": "0"}}}, content_type=MERGE
    )
    await client.ok(
        "PATCH", f"{WIDGETS}/w2", {"metadata": {"labels": {"a": "1"}}}, content_type=MERGE
    )
    await client.ok("DELETE", f"{WIDGETS}/w1")


async def _lines(response: aiohttp.ClientResponse, count: int) -> list[bytes]:
    return [await asyncio.wait_for(response.content.readline(), 5) for _ in range(count)]


async def test_watches_of_a_type_send_identical_bytes_and_keep_their_selectors(
    client: Client, session: aiohttp.ClientSession
) -> None:
    since = (await client.ok("GET", WIDGETS))["metadata"]["resourceVersion"]
    responses = {
        label: await session.get(path, params={**params, "watch": "true", "resourceVersion": since})
        for label, (path, params, _) in WATCHES.items()
    }
    try:
        await _write_changes(client)
        seen: dict[tuple[str, str], bytes] = {}  # (type, resourceVersion) -> the line
        for label, (_, _, expected) in WATCHES.items():
            lines = await _lines(responses[label], len(expected))
            events = [json.loads(line) for line in lines]
            assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == expected
            for line, event in zip(lines, events, strict=True):
                assert line == json.dumps(event, separators=(",", ":")).encode() + b"\n"
                assert event["object"]["apiVersion"] == "example.com/v1"
                rv = event["object"]["metadata"]["resourceVersion"]
                assert seen.setdefault((event["type"], rv), line) == line, label
    finally:
        for response in responses.values():
            response.close()


async def test_each_served_version_gets_its_own_api_version(
    api: ApiServer, client: Client, session: aiohttp.ClientSession
) -> None:
    crd: dict[str, Any] = json.loads(json.dumps(WIDGET_CRD))
    crd["spec"]["versions"].append({**crd["spec"]["versions"][0], "name": "v2", "storage": False})
    api.install_crd(crd)
    since = (await client.ok("GET", WIDGETS))["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": since}
    versions = ("v1", "v2", "v1", "v2")
    responses = [
        await session.get(f"/apis/example.com/{v}/namespaces/default/widgets", params=params)
        for v in versions
    ]
    try:
        await client.ok("POST", WIDGETS, widget("w"))
        lines = [(await _lines(response, 1))[0] for response in responses]
        apis = [json.loads(line)["object"]["apiVersion"] for line in lines]
        assert apis == [f"example.com/{v}" for v in versions]
        assert lines[0] == lines[2] and lines[1] == lines[3] and lines[0] != lines[1]
    finally:
        for response in responses:
            response.close()
