"""Deletion: finalizers, deletionTimestamp, propagation policies, ownerReference GC, namespaces."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.emulation.helpers import (
    CONFIGMAPS,
    JOBS,
    JSON_PATCH,
    MERGE,
    PODS,
    WIDGETS,
    Client,
    eventually,
    job,
    read_watch,
    widget,
)


async def _gone(client: Client, path: str) -> bool:
    return (await client.get(path))[0] == 404


def _owned_by(owner: dict[str, Any], name: str, **extra: Any) -> dict[str, Any]:
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {"metadata": {"name": name, "ownerReferences": [ref]}, **extra}


async def test_delete_without_finalizers_removes_at_once(client: Client) -> None:
    created = await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c"}})
    status, body = await client.delete(f"{CONFIGMAPS}/c")
    assert status == 200
    assert (body["kind"], body["status"]) == ("Status", "Success")
    assert body["details"] == {
        "name": "c",
        "group": "",
        "kind": "configmaps",
        "uid": created["metadata"]["uid"],
    }
    assert await _gone(client, f"{CONFIGMAPS}/c")
    assert (await client.delete(f"{CONFIGMAPS}/c"))[0] == 404


async def test_finalizers_hold_a_deleted_object_until_the_last_is_removed(
    client: Client, session: aiohttp.ClientSession
) -> None:
    body = widget("w")
    body["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    created = await client.ok("POST", WIDGETS, body)
    status, marked = await client.delete(f"{WIDGETS}/w")
    assert status == 200
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    assert marked["metadata"]["generation"] == 2
    again = await client.ok("DELETE", f"{WIDGETS}/w")
    assert again["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
    status, _ = await client.patch(
        f"{WIDGETS}/w", {"metadata": {"finalizers": ["example.com/a", "example.com/b", "new/one"]}}
    )
    assert status == 422  # no new finalizers on a deleting object
    ops = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": marked["metadata"]["resourceVersion"],
        },
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    await client.ok("PATCH", f"{WIDGETS}/w", ops, content_type=JSON_PATCH)
    assert not await _gone(client, f"{WIDGETS}/w")
    last = await client.ok(
        "PATCH", f"{WIDGETS}/w", {"metadata": {"finalizers": None}}, content_type=MERGE
    )
    assert "finalizers" not in last["metadata"]
    assert await _gone(client, f"{WIDGETS}/w")
    events = await read_watch(
        session,
        WIDGETS,
        {"resourceVersion": created["metadata"]["resourceVersion"]},
        until=lambda ev: len(ev) >= 3,
    )
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]


async def test_create_while_the_namesake_is_being_deleted_is_409(client: Client) -> None:
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c", "finalizers": ["x/y"]}})
    await client.ok("DELETE", f"{CONFIGMAPS}/c")
    status, body = await client.post(CONFIGMAPS, {"metadata": {"name": "c"}})
    assert (status, body["reason"]) == (409, "AlreadyExists")


async def test_delete_preconditions(client: Client) -> None:
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c"}})
    status, body = await client.delete(f"{CONFIGMAPS}/c", {"preconditions": {"uid": "other"}})
    assert (status, body["reason"]) == (409, "Conflict")
    status, _ = await client.delete(f"{CONFIGMAPS}/c", {"preconditions": {"resourceVersion": "1"}})
    assert status == 409
    assert not await _gone(client, f"{CONFIGMAPS}/c")


async def test_owner_deletion_collects_dependents_in_the_background(client: Client) -> None:
    owner = await client.ok("POST", WIDGETS, widget("owner"))
    await client.ok("POST", CONFIGMAPS, _owned_by(owner, "dependent"))
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "unrelated"}})
    await client.ok("DELETE", f"{WIDGETS}/owner", params={"propagationPolicy": "Background"})

    async def collected() -> bool:
        return await _gone(client, f"{CONFIGMAPS}/dependent")

    await eventually(collected)
    assert not await _gone(client, f"{CONFIGMAPS}/unrelated")


async def test_a_dependent_of_a_missing_owner_is_collected(client: Client) -> None:
    ghost = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "ghost", "uid": "4b9cb4a5-0000-0000-0000-000000000000"},
    }
    await client.ok("POST", CONFIGMAPS, _owned_by(ghost, "orphan"))
    await eventually(lambda: _gone(client, f"{CONFIGMAPS}/orphan"))


async def test_gc_follows_uids_not_names(client: Client) -> None:
    """A dependent of a deleted owner goes even if a namesake owner is created meanwhile."""
    owner = await client.ok("POST", WIDGETS, widget("owner"))
    await client.ok("POST", CONFIGMAPS, _owned_by(owner, "dependent"))
    await client.ok("DELETE", f"{WIDGETS}/owner")
    await client.ok("POST", WIDGETS, widget("owner"))
    await eventually(lambda: _gone(client, f"{CONFIGMAPS}/dependent"))


async def test_jobs_orphan_their_pods_by_default_as_batch_v1_does(client: Client) -> None:
    owner = await client.ok("POST", JOBS, job("j"))
    pod_spec = {"containers": [{"name": "main", "image": "busybox"}], "restartPolicy": "Never"}
    await client.ok("POST", PODS, _owned_by(owner, "j-pod", spec=pod_spec))
    async with client.session.delete(f"{JOBS}/j") as response:
        assert response.status == 200
        assert "child pods are preserved" in response.headers["Warning"]
    await eventually(lambda: _gone(client, f"{JOBS}/j"))
    pod = await client.ok("GET", f"{PODS}/j-pod")
    assert "ownerReferences" not in pod["metadata"]


async def test_background_propagation_deletes_a_jobs_pods(client: Client) -> None:
    owner = await client.ok("POST", JOBS, job("j"))
    pod_spec = {"containers": [{"name": "main", "image": "busybox"}], "restartPolicy": "Never"}
    await client.ok("POST", PODS, _owned_by(owner, "j-pod", spec=pod_spec))
    await client.ok(
        "DELETE", f"{JOBS}/j", {"kind": "DeleteOptions", "propagationPolicy": "Background"}
    )
    assert await _gone(client, f"{JOBS}/j")
    await eventually(lambda: _gone(client, f"{PODS}/j-pod"))


async def test_foreground_deletion_waits_for_dependents(client: Client) -> None:
    owner = await client.ok("POST", WIDGETS, widget("owner"))
    await client.ok("POST", CONFIGMAPS, _owned_by(owner, "held"))
    await client.ok(
        "PATCH", f"{CONFIGMAPS}/held", {"metadata": {"finalizers": ["x/hold"]}}, content_type=MERGE
    )
    marked = await client.ok(
        "DELETE", f"{WIDGETS}/owner", params={"propagationPolicy": "Foreground"}
    )
    assert "foregroundDeletion" in marked["metadata"]["finalizers"]

    async def dependent_marked() -> bool:
        return bool(
            (await client.ok("GET", f"{CONFIGMAPS}/held"))["metadata"].get("deletionTimestamp")
        )

    await eventually(dependent_marked)
    assert not await _gone(client, f"{WIDGETS}/owner")
    await client.ok(
        "PATCH", f"{CONFIGMAPS}/held", {"metadata": {"finalizers": None}}, content_type=MERGE
    )
    await eventually(lambda: _gone(client, f"{WIDGETS}/owner"))


async def test_deleting_a_namespace_deletes_its_content(client: Client) -> None:
    await client.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "team"}})
    await client.ok("POST", "/api/v1/namespaces/team/configmaps", {"metadata": {"name": "c"}})
    deleted = await client.ok("DELETE", "/api/v1/namespaces/team")
    assert deleted["status"]["phase"] == "Terminating"
    await eventually(lambda: _gone(client, "/api/v1/namespaces/team"))
    assert await _gone(client, "/api/v1/namespaces/team/configmaps/c")
    status, _ = await client.post("/api/v1/namespaces/team/configmaps", {"metadata": {"name": "c"}})
    assert status == 404


@pytest.mark.parametrize("policy", ["Orphan", "Background", "Foreground"])
async def test_propagation_policies_are_accepted(client: Client, policy: str) -> None:
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c"}})
    status, _ = await client.delete(f"{CONFIGMAPS}/c", propagationPolicy=policy)
    assert status == 200
    await eventually(lambda: _gone(client, f"{CONFIGMAPS}/c"))


async def test_delete_collection_with_a_label_selector(client: Client) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        await client.ok("POST", CONFIGMAPS, {"metadata": {"name": name, "labels": {"app": app}}})
    await client.ok("DELETE", CONFIGMAPS, params={"labelSelector": "app=x"})
    listed = await client.ok("GET", CONFIGMAPS)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["c"]
