"""PATCH content types: merge, JSON patch (RFC 6902), strategic merge; 400 and 415 as a cluster."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulation.helpers import (
    DEPLOYMENTS,
    JSON_PATCH,
    MERGE,
    STRATEGIC,
    WIDGETS,
    Client,
    deployment,
    widget,
)


async def test_merge_patch_merges_and_deletes_with_null(client: Client) -> None:
    await client.ok("POST", WIDGETS, widget("w1", size=1, color="red", nested={"a": 1, "b": 2}))
    patched = await client.ok(
        "PATCH",
        f"{WIDGETS}/w1",
        {"spec": {"color": None, "nested": {"b": None, "c": 3}, "list": [1]}},
        content_type=MERGE,
    )
    assert patched["spec"] == {"size": 1, "nested": {"a": 1, "c": 3}, "list": [1]}


JSON_PATCH_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    (
        "add",
        [{"op": "add", "path": "/spec/new", "value": 1}],
        {"size": 1, "items": ["a", "b"], "new": 1},
    ),
    (
        "add to list end",
        [{"op": "add", "path": "/spec/items/-", "value": "c"}],
        {"size": 1, "items": ["a", "b", "c"]},
    ),
    (
        "insert in list",
        [{"op": "add", "path": "/spec/items/0", "value": "z"}],
        {"size": 1, "items": ["z", "a", "b"]},
    ),
    ("remove", [{"op": "remove", "path": "/spec/items/0"}], {"size": 1, "items": ["b"]}),
    (
        "replace",
        [{"op": "replace", "path": "/spec/size", "value": 2}],
        {"size": 2, "items": ["a", "b"]},
    ),
    (
        "move",
        [{"op": "move", "from": "/spec/size", "path": "/spec/count"}],
        {"count": 1, "items": ["a", "b"]},
    ),
    (
        "copy",
        [{"op": "copy", "from": "/spec/size", "path": "/spec/count"}],
        {"size": 1, "count": 1, "items": ["a", "b"]},
    ),
    (
        "test then replace",
        [
            {"op": "test", "path": "/spec/size", "value": 1},
            {"op": "replace", "path": "/spec/size", "value": 3},
        ],
        {"size": 3, "items": ["a", "b"]},
    ),
]


@pytest.mark.parametrize(
    ("ops", "spec"), [c[1:] for c in JSON_PATCH_CASES], ids=[c[0] for c in JSON_PATCH_CASES]
)
async def test_json_patch_operations(
    client: Client, ops: list[dict[str, Any]], spec: dict[str, Any]
) -> None:
    await client.ok("POST", WIDGETS, widget("w1", size=1, items=["a", "b"]))
    patched = await client.ok("PATCH", f"{WIDGETS}/w1", ops, content_type=JSON_PATCH)
    assert patched["spec"] == spec


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/spec/size", "value": 2}],
        [{"op": "test", "path": "/spec/size", "value": "1"}],
        [{"op": "remove", "path": "/spec/missing"}],
        [{"op": "replace", "path": "/spec/missing", "value": 1}],
        [{"op": "add", "path": "/spec/items/9", "value": 1}],
        [{"op": "frobnicate", "path": "/spec"}],
    ],
)
async def test_json_patch_that_does_not_apply_is_422_and_changes_nothing(
    client: Client, ops: list[dict[str, Any]]
) -> None:
    created = await client.ok("POST", WIDGETS, widget("w1", size=1, items=["a"]))
    status, body = await client.patch(f"{WIDGETS}/w1", ops, content_type=JSON_PATCH)
    assert status == 422, body
    assert body["kind"] == "Status" and body["reason"] == "Invalid"
    assert await client.ok("GET", f"{WIDGETS}/w1") == created


# (content type, body) pairs whose JSON type does not fit the content type: 400 BadRequest.
WRONG_BODY_TYPES = [
    (JSON_PATCH, {"status": {"phase": "x"}}),  # kubernetes_asyncio's status patch with a dict
    (MERGE, [{"op": "add", "path": "/spec/x", "value": 1}]),
    (STRATEGIC, [1, 2]),
]


@pytest.mark.parametrize(("content_type", "body"), WRONG_BODY_TYPES)
async def test_body_of_the_wrong_json_type_is_400(
    client: Client, content_type: str, body: Any
) -> None:
    await client.ok("POST", DEPLOYMENTS, deployment("d1"))
    status, answer = await client.patch(f"{DEPLOYMENTS}/d1/status", body, content_type=content_type)
    assert status == 400, answer
    assert answer["reason"] == "BadRequest"


async def test_json_patch_with_a_dict_on_a_custom_status_is_400(client: Client) -> None:
    await client.ok("POST", WIDGETS, widget("w1"))
    status, _ = await client.patch(
        f"{WIDGETS}/w1/status", {"status": {"phase": "x"}}, content_type=JSON_PATCH
    )
    assert status == 400


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        (f"{WIDGETS}/w1", {"spec": {}}, "application/json"),
        (f"{WIDGETS}/w1", {"spec": {}}, "text/plain"),
        (f"{WIDGETS}/w1", {"spec": {}}, STRATEGIC),  # no strategic merge for custom resources
        (WIDGETS, widget("w2"), "application/vnd.kubernetes.protobuf"),
    ],
)
async def test_unknown_content_type_is_415(
    client: Client, path: str, body: Any, content_type: str
) -> None:
    await client.ok("POST", WIDGETS, widget("w1"))
    method = "POST" if path == WIDGETS else "PATCH"
    status, answer = await client.request(method, path, body, content_type=content_type)
    assert status == 415, answer
    assert answer["reason"] == "UnsupportedMediaType"


async def test_malformed_json_is_400(client: Client) -> None:
    status, _ = await client.request(
        "POST", WIDGETS, raw=b"{not json", content_type="application/json"
    )
    assert status == 400


async def test_strategic_merge_merges_containers_by_name(client: Client) -> None:
    body = deployment("d1")
    body["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "side:1"})
    await client.ok("POST", DEPLOYMENTS, body)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "app", "image": "app:2"},
                        {"name": "new", "image": "new:1"},
                    ]
                }
            }
        }
    }
    patched = await client.ok("PATCH", f"{DEPLOYMENTS}/d1", patch, content_type=STRATEGIC)
    containers = {c["name"]: c["image"] for c in patched["spec"]["template"]["spec"]["containers"]}
    assert containers == {"app": "app:2", "sidecar": "side:1", "new": "new:1"}
    assert patched["metadata"]["generation"] == 2


async def test_strategic_merge_delete_directive_and_set_finalizers(client: Client) -> None:
    body = deployment("d1")
    body["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "side:1"})
    body["metadata"]["finalizers"] = ["a/b"]
    await client.ok("POST", DEPLOYMENTS, body)
    patch = {
        "metadata": {"finalizers": ["c/d"]},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}},
    }
    patched = await client.ok("PATCH", f"{DEPLOYMENTS}/d1", patch, content_type=STRATEGIC)
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["app"]
    assert patched["metadata"]["finalizers"] == ["a/b", "c/d"]


async def test_patch_of_a_missing_object_is_404(client: Client) -> None:
    status, body = await client.patch(f"{WIDGETS}/nope", {"spec": {}})
    assert (status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'widgets.example.com "nope" not found'


async def test_apply_patch_creates_then_merges(client: Client) -> None:
    apply = "application/apply-patch+yaml"
    status, _ = await client.patch(f"{WIDGETS}/w1", widget("w1", size=1), content_type=apply)
    assert status == 422  # fieldManager is required
    params = {"fieldManager": "test"}
    status, created = await client.patch(
        f"{WIDGETS}/w1", widget("w1", size=1), content_type=apply, params=params
    )
    assert status == 201, created
    merged = await client.ok(
        "PATCH", f"{WIDGETS}/w1", widget("w1", color="red"), content_type=apply, params=params
    )
    assert merged["spec"] == {"size": 1, "color": "red"}
