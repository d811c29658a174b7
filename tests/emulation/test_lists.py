"""Lists: kind, apiVersion, resourceVersion, label and field selectors, pagination."""

from __future__ import annotations

import pytest

from tests.emulation.helpers import CONFIGMAPS, MERGE, WIDGETS, Client, widget

LABELS = {
    "a": {"app": "web", "tier": "front"},
    "b": {"app": "web", "tier": "back"},
    "c": {"app": "db"},
    "d": {},
}


@pytest.fixture
async def labelled(client: Client) -> None:
    for name, labels in LABELS.items():
        await client.ok("POST", CONFIGMAPS, {"metadata": {"name": name, "labels": labels}})


async def test_list_has_kind_api_version_and_resource_version(client: Client) -> None:
    created = await client.ok("POST", WIDGETS, widget("w1"))
    listed = await client.ok("GET", WIDGETS)
    assert listed["kind"] == "WidgetList"
    assert listed["apiVersion"] == "example.com/v1"
    assert listed["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
    assert listed["items"][0]["kind"] == "Widget"  # custom resources carry kind in lists


async def test_builtin_list_items_carry_no_kind(client: Client) -> None:
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c"}})
    listed = await client.ok("GET", CONFIGMAPS)
    assert (listed["kind"], listed["apiVersion"]) == ("ConfigMapList", "v1")
    assert "kind" not in listed["items"][0] and "apiVersion" not in listed["items"][0]


async def test_list_resource_version_is_the_latest_write(client: Client) -> None:
    await client.ok("POST", WIDGETS, widget("w1"))
    other = await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c"}})
    listed = await client.ok("GET", WIDGETS)
    assert listed["metadata"]["resourceVersion"] == other["metadata"]["resourceVersion"]


async def test_cluster_wide_list_spans_namespaces(client: Client) -> None:
    await client.ok("POST", CONFIGMAPS, {"metadata": {"name": "c"}})
    await client.ok(
        "POST", "/api/v1/namespaces/kube-system/configmaps", {"metadata": {"name": "c"}}
    )
    listed = await client.ok("GET", "/api/v1/configmaps")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]] == [
        ("default", "c"),
        ("kube-system", "c"),
    ]
    namespaced = await client.ok("GET", "/api/v1/namespaces/kube-system/configmaps")
    assert len(namespaced["items"]) == 1


SELECTOR_CASES = [
    ("app=web", {"a", "b"}),
    ("app==web", {"a", "b"}),
    ("app!=web", {"c", "d"}),
    ("app=web,tier=back", {"b"}),
    ("app in (web, db)", {"a", "b", "c"}),
    ("app notin (web)", {"c", "d"}),
    ("tier", {"a", "b"}),
    ("!tier", {"c", "d"}),
    ("app,!tier", {"c"}),
    ("app in (web),tier notin (front)", {"b"}),
    ("", {"a", "b", "c", "d"}),
]


@pytest.mark.parametrize(("selector", "names"), SELECTOR_CASES)
@pytest.mark.usefixtures("labelled")
async def test_label_selectors(client: Client, selector: str, names: set[str]) -> None:
    listed = await client.ok("GET", CONFIGMAPS, params={"labelSelector": selector})
    assert {i["metadata"]["name"] for i in listed["items"]} == names


@pytest.mark.parametrize("selector", ["app in web", "app=(x", "=x", "app=bad value!"])
async def test_malformed_label_selector_is_400(client: Client, selector: str) -> None:
    status, body = await client.get(CONFIGMAPS, labelSelector=selector)
    assert status == 400, body


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("metadata.name=a", {"a"}),
        ("metadata.name!=a", {"b", "c", "d"}),
        ("metadata.namespace=default", {"a", "b", "c", "d"}),
        ("metadata.namespace=other", set()),
    ],
)
@pytest.mark.usefixtures("labelled")
async def test_field_selectors(client: Client, selector: str, names: set[str]) -> None:
    listed = await client.ok("GET", "/api/v1/configmaps", params={"fieldSelector": selector})
    assert {i["metadata"]["name"] for i in listed["items"]} == names


async def test_unknown_field_selector_is_400(client: Client) -> None:
    status, body = await client.get(CONFIGMAPS, fieldSelector="data.x=1")
    assert status == 400
    assert "not a known field selector" in body["message"]


async def test_event_field_selectors_as_kubectl_describe_uses_them(client: Client) -> None:
    path = "/api/v1/namespaces/default/events"
    for name, involved in (("e1", "w1"), ("e2", "w2")):
        event = {
            "metadata": {"name": name},
            "involvedObject": {"kind": "Widget", "name": involved, "namespace": "default"},
            "reason": "Test",
            "message": "m",
            "type": "Normal",
        }
        await client.ok("POST", path, event)
    selector = "involvedObject.name=w1,involvedObject.namespace=default,involvedObject.kind=Widget"
    listed = await client.ok("GET", path, params={"fieldSelector": selector})
    assert [i["metadata"]["name"] for i in listed["items"]] == ["e1"]


@pytest.mark.usefixtures("labelled")
async def test_pagination_with_limit_and_continue(client: Client) -> None:
    first = await client.ok("GET", CONFIGMAPS, params={"limit": "3"})
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b", "c"]
    assert first["metadata"]["remainingItemCount"] == 1
    await client.ok("PATCH", f"{CONFIGMAPS}/d", {"data": {"x": "1"}}, content_type=MERGE)
    second = await client.ok(
        "GET", CONFIGMAPS, params={"limit": "3", "continue": first["metadata"]["continue"]}
    )
    assert [i["metadata"]["name"] for i in second["items"]] == ["d"]
    assert "continue" not in second["metadata"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


async def test_unknown_resource_is_404(client: Client) -> None:
    status, body = await client.get("/apis/example.com/v1/namespaces/default/nothings")
    assert (status, body["kind"], body["reason"]) == (404, "Status", "NotFound")
