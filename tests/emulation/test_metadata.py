"""System metadata: uid, resourceVersion, generation, creationTimestamp, generateName, names."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.emulation.helpers import (
    CONFIGMAPS,
    DEPLOYMENTS,
    GADGETS,
    MERGE,
    WIDGETS,
    Client,
    deployment,
    widget,
)


async def test_create_sets_system_metadata(client: Client) -> None:
    created = await client.ok("POST", WIDGETS, widget("w1"))
    meta = created["metadata"]
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert meta["generation"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["namespace"] == "default"
    assert int(meta["resourceVersion"]) > 0
    fetched = await client.ok("GET", f"{WIDGETS}/w1")
    assert fetched == created


async def test_client_supplied_system_fields_are_replaced(client: Client) -> None:
    body = widget("w1")
    body["metadata"].update(uid="forged", generation=7, creationTimestamp="2000-01-01T00:00:00Z")
    created = await client.ok("POST", WIDGETS, body)
    assert created["metadata"]["uid"] != "forged"
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["creationTimestamp"] != "2000-01-01T00:00:00Z"


async def test_every_write_bumps_one_global_resource_version(client: Client) -> None:
    a = await client.ok("POST", WIDGETS, widget("a"))
    b = await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "b"}, "data": {"k": "v"}})
    a2 = await client.ok(
        "PATCH",
        f"{WIDGETS}/a",
        {"metadata": {"labels": {"x": "y"}}},
        content_type="application/merge-patch+json",
    )
    rvs = [int(o["metadata"]["resourceVersion"]) for o in (a, b, a2)]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3
    assert rvs[1] == rvs[0] + 1 and rvs[2] == rvs[1] + 1


async def test_a_no_op_write_keeps_the_resource_version(client: Client) -> None:
    created = await client.ok("POST", WIDGETS, widget("w1", size=1))
    same = await client.ok(
        "PATCH", f"{WIDGETS}/w1", {"spec": {"size": 1}}, content_type="application/merge-patch+json"
    )
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


# (endpoint, patch, generation bumped?) — status has its own subresource on widgets only.
GENERATION_CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("spec change", "", {"spec": {"size": 2}}, True),
    ("label change", "", {"metadata": {"labels": {"a": "b"}}}, False),
    ("annotation change", "", {"metadata": {"annotations": {"a": "b"}}}, False),
    ("finalizer added", "", {"metadata": {"finalizers": ["example.com/x"]}}, False),
    ("status via /status", "/status", {"status": {"phase": "Done"}}, False),
    ("new top-level field", "", {"extra": {"x": 1}}, True),
]


@pytest.mark.parametrize(
    ("endpoint", "patch", "bumped"),
    [c[1:] for c in GENERATION_CASES],
    ids=[c[0] for c in GENERATION_CASES],
)
async def test_generation_moves_only_on_spec_changes(
    client: Client, endpoint: str, patch: dict[str, Any], bumped: bool
) -> None:
    await client.ok("POST", WIDGETS, widget("w1"))
    patched = await client.ok(
        "PATCH", f"{WIDGETS}/w1{endpoint}", patch, content_type="application/merge-patch+json"
    )
    assert patched["metadata"]["generation"] == (2 if bumped else 1)


@pytest.mark.parametrize(
    ("patch", "bumped"),
    [
        ({"spec": {"size": 2}}, True),
        ({"status": {"phase": "Done"}}, True),  # no status subresource: status is plain data
        ({"metadata": {"labels": {"a": "b"}}}, False),
    ],
)
async def test_generation_without_status_subresource(
    client: Client, patch: dict[str, Any], bumped: bool
) -> None:
    await client.ok("POST", GADGETS, {"metadata": {"name": "g1"}, "spec": {"size": 1}})
    patched = await client.ok(
        "PATCH", f"{GADGETS}/g1", patch, content_type="application/merge-patch+json"
    )
    assert patched["metadata"]["generation"] == (2 if bumped else 1)


# ConfigMaps have neither spec nor status: anything but metadata counts for generation.
@pytest.mark.parametrize(
    ("patch", "bumped"),
    [
        ({"data": {"k": "v2"}}, True),
        ({"metadata": {"labels": {"a": "b"}}}, False),
    ],
)
async def test_generation_of_a_builtin(client: Client, patch: dict[str, Any], bumped: bool) -> None:
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c"}, "data": {"k": "v"}})
    patched = await client.ok(
        "PATCH", f"{CONFIGMAPS}/c", patch, content_type="application/merge-patch+json"
    )
    assert patched["metadata"]["generation"] == (2 if bumped else 1)


async def test_generate_name_appends_a_random_suffix(client: Client) -> None:
    body = {"metadata": {"generateName": "kopf-event-"}, "data": {}}
    names = {(await client.ok("POST", CONFIGMAPS, body))["metadata"]["name"] for _ in range(5)}
    assert len(names) == 5
    assert all(re.fullmatch(r"kopf-event-[bcdfghjklmnpqrstvwxz2456789]{5}", n) for n in names)


async def test_generate_name_is_truncated_to_fit(client: Client) -> None:
    created = await client.ok("POST", CONFIGMAPS, {"metadata": {"generateName": "x" * 80}})
    assert len(created["metadata"]["name"]) == 63


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"name": "Bad_Name"}, "metadata.name"),
        ({}, "metadata.name"),
        ({"name": "ok", "labels": {"app": "not valid!"}}, "metadata.labels"),
        ({"name": "ok", "labels": {"app": "x" * 64}}, "metadata.labels"),
        ({"name": "ok", "labels": {"bad key!": "x"}}, "metadata.labels"),
        (
            {
                "name": "ok",
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "a"}],
            },
            "metadata.ownerReferences[0].uid",
        ),
    ],
)
async def test_invalid_metadata_is_422(
    client: Client, metadata: dict[str, Any], field: str
) -> None:
    status, body = await client.post(CONFIGMAPS, {"metadata": metadata})
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert field in [cause["field"] for cause in body["details"]["causes"]]
    assert body["message"].startswith('ConfigMap "')


async def test_create_in_a_missing_namespace_is_404(client: Client) -> None:
    status, body = await client.post(
        "/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "a"}}
    )
    assert (status, body["reason"], body["message"]) == (
        404,
        "NotFound",
        'namespaces "nowhere" not found',
    )


async def test_body_namespace_must_match_the_url(client: Client) -> None:
    body = {"metadata": {"name": "a", "namespace": "kube-system"}}
    status, answer = await client.post(CONFIGMAPS, body)
    assert status == 400, answer


async def test_resource_version_on_create_is_rejected(client: Client) -> None:
    status, _ = await client.post(CONFIGMAPS, {"metadata": {"name": "a", "resourceVersion": "5"}})
    assert status == 400


async def test_deployment_generation_also_counts_annotations(client: Client) -> None:
    """As the apiserver's deployment strategy: annotations are copied to ReplicaSets."""
    await client.ok("POST", DEPLOYMENTS, deployment("d"))
    patch = {"metadata": {"annotations": {"alembic-operator.dev/held-by": "m"}}}
    annotated = await client.ok("PATCH", f"{DEPLOYMENTS}/d", patch, content_type=MERGE)
    assert annotated["metadata"]["generation"] == 2
    labelled = await client.ok(
        "PATCH", f"{DEPLOYMENTS}/d", {"metadata": {"labels": {"a": "b"}}}, content_type=MERGE
    )
    assert labelled["metadata"]["generation"] == 2
    paused = await client.ok(
        "PATCH", f"{DEPLOYMENTS}/d", {"spec": {"paused": True}}, content_type=MERGE
    )
    assert paused["metadata"]["generation"] == 3
