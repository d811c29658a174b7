"""Optimistic concurrency: stale resourceVersions, AlreadyExists, PUT semantics."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulation.helpers import CONFIGMAPS, JSON_PATCH, MERGE, WIDGETS, Client, widget


async def _stale_and_fresh(client: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    stale = await client.ok("POST", WIDGETS, widget("w1", size=1))
    fresh = await client.ok("PATCH", f"{WIDGETS}/w1", {"spec": {"size": 2}}, content_type=MERGE)
    return stale, fresh


@pytest.mark.parametrize("endpoint", ["", "/status"])
async def test_put_with_a_stale_resource_version_is_409(client: Client, endpoint: str) -> None:
    stale, _ = await _stale_and_fresh(client)
    stale["spec"] = {"size": 3}
    stale["status"] = {"phase": "x"}
    status, body = await client.put(f"{WIDGETS}/w1{endpoint}", stale)
    assert status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on widgets.example.com "w1": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert body["details"] == {"name": "w1", "group": "example.com", "kind": "widgets"}


async def test_merge_patch_carrying_a_stale_resource_version_is_409(client: Client) -> None:
    stale, _ = await _stale_and_fresh(client)
    patch = {
        "metadata": {"resourceVersion": stale["metadata"]["resourceVersion"]},
        "spec": {"size": 9},
    }
    status, body = await client.patch(f"{WIDGETS}/w1", patch)
    assert (status, body["reason"]) == (409, "Conflict")


async def test_json_patch_test_op_on_a_stale_resource_version_is_422(client: Client) -> None:
    stale, _ = await _stale_and_fresh(client)
    ops = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": stale["metadata"]["resourceVersion"],
        },
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/f"]},
    ]
    status, body = await client.patch(f"{WIDGETS}/w1", ops, content_type=JSON_PATCH)
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert "test failed" in body["details"]["causes"][0]["message"]
    current = await client.ok("GET", f"{WIDGETS}/w1")
    assert "finalizers" not in current["metadata"]


async def test_put_with_the_current_resource_version_succeeds(client: Client) -> None:
    _, fresh = await _stale_and_fresh(client)
    fresh["spec"] = {"size": 5}
    replaced = await client.ok("PUT", f"{WIDGETS}/w1", fresh)
    assert replaced["spec"] == {"size": 5}
    assert replaced["metadata"]["generation"] == 3
    assert int(replaced["metadata"]["resourceVersion"]) > int(fresh["metadata"]["resourceVersion"])


async def test_put_replaces_the_whole_object(client: Client) -> None:
    created = await client.ok(
        "POST",
        CONFIGMAPS,
        {"metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"x": "1", "y": "2"}},
    )
    created["data"] = {"z": "3"}
    del created["metadata"]["labels"]
    replaced = await client.ok("PUT", f"{CONFIGMAPS}/c", created)
    assert replaced["data"] == {"z": "3"}
    assert "labels" not in replaced["metadata"]
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]
    assert replaced["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]


async def test_put_without_resource_version_is_unconditional_for_builtins(client: Client) -> None:
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c"}, "data": {"x": "1"}})
    replaced = await client.ok(
        "PUT", f"{CONFIGMAPS}/c", {"metadata": {"name": "c"}, "data": {"x": "2"}}
    )
    assert replaced["data"] == {"x": "2"}


async def test_put_without_resource_version_is_invalid_for_custom_resources(client: Client) -> None:
    await client.ok("POST", WIDGETS, widget("w1"))
    status, body = await client.put(f"{WIDGETS}/w1", widget("w1", size=2))
    assert status == 422, body
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (f"{WIDGETS}/missing", widget("missing"), 404),
        (f"{WIDGETS}/other", widget("w1"), 400),  # the name in the body must match the URL
    ],
)
async def test_put_errors(client: Client, path: str, body: dict[str, Any], status: int) -> None:
    await client.ok("POST", WIDGETS, widget("w1"))
    body["metadata"]["resourceVersion"] = "1"
    assert (await client.put(path, body))[0] == status


async def test_create_of_an_existing_name_is_409_already_exists(client: Client) -> None:
    await client.ok("POST", WIDGETS, widget("w1"))
    status, body = await client.post(WIDGETS, widget("w1"))
    assert status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'widgets.example.com "w1" already exists'


async def test_uid_in_the_body_must_match(client: Client) -> None:
    created = await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c"}})
    created["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    status, body = await client.put(f"{CONFIGMAPS}/c", created)
    assert (status, body["reason"]) == (409, "Conflict")
    assert "Precondition failed: UID" in body["message"]


async def test_dry_run_writes_nothing(client: Client) -> None:
    status, body = await client.post(WIDGETS, widget("w1"), params={"dryRun": "All"})
    assert status == 201, body
    assert (await client.get(f"{WIDGETS}/w1"))[0] == 404
