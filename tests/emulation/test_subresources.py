"""Status subresource isolation (both directions), built-in defaults, pods/log."""

from __future__ import annotations

from typing import Any

import pytest

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.jsontree import clone
from alembic_operator.emulation.patching import merge_patch
from tests.emulation.helpers import (
    DEPLOYMENTS,
    GADGETS,
    JOBS,
    MERGE,
    PODS,
    WIDGETS,
    Client,
    deployment,
    job,
    widget,
)

# (collection, object) for resources with a status subresource.
WITH_STATUS: list[tuple[str, dict[str, Any]]] = [
    (WIDGETS, widget("x")),
    (JOBS, job("x")),
    (DEPLOYMENTS, deployment("x")),
]
IDS = ["custom", "job", "deployment"]


@pytest.mark.parametrize(("path", "body"), WITH_STATUS, ids=IDS)
async def test_status_is_dropped_on_create(client: Client, path: str, body: dict[str, Any]) -> None:
    created = await client.ok("POST", path, {**body, "status": {"phase": "Forged"}})
    assert created.get("status") in (None, {})


@pytest.mark.parametrize(("path", "body"), WITH_STATUS, ids=IDS)
async def test_main_endpoint_ignores_status(
    client: Client, path: str, body: dict[str, Any]
) -> None:
    await client.ok("POST", path, body)
    await client.ok("PATCH", f"{path}/x/status", {"status": {"phase": "Real"}}, content_type=MERGE)
    patched = await client.ok(
        "PATCH",
        f"{path}/x",
        {"status": {"phase": "Forged"}, "metadata": {"labels": {"seen": "yes"}}},
        content_type=MERGE,
    )
    assert patched["status"] == {"phase": "Real"}
    assert patched["metadata"]["labels"]["seen"] == "yes"
    current = await client.ok("GET", f"{path}/x")
    current["status"] = {"phase": "Forged by PUT"}
    replaced = await client.ok("PUT", f"{path}/x", current)
    assert replaced["status"] == {"phase": "Real"}


@pytest.mark.parametrize(("path", "body"), WITH_STATUS, ids=IDS)
async def test_status_endpoint_ignores_everything_else(
    client: Client, path: str, body: dict[str, Any]
) -> None:
    created = await client.ok("POST", path, body)
    patch = {
        "status": {"phase": "Done"},
        "spec": {"forged": True},
        "metadata": {"labels": {"forged": "x"}},
    }
    patched = await client.ok("PATCH", f"{path}/x/status", patch, content_type=MERGE)
    assert patched["status"] == {"phase": "Done"}
    assert patched["spec"] == created["spec"]
    assert "forged" not in (patched["metadata"].get("labels") or {})
    assert patched["metadata"]["generation"] == 1


async def test_status_put(client: Client) -> None:
    created = await client.ok("POST", WIDGETS, widget("x"))
    created["status"] = {"phase": "Put"}
    created["spec"] = {"forged": True}
    replaced = await client.ok("PUT", f"{WIDGETS}/x/status", created)
    assert replaced["status"] == {"phase": "Put"}
    assert replaced["spec"] == {"size": 1}


async def test_status_endpoint_of_a_resource_without_it_is_404(client: Client) -> None:
    await client.ok("POST", GADGETS, {"metadata": {"name": "g"}})
    status, _ = await client.patch(f"{GADGETS}/g/status", {"status": {}})
    assert status == 404


async def test_get_status_returns_the_object(client: Client) -> None:
    created = await client.ok("POST", WIDGETS, widget("x"))
    assert await client.ok("GET", f"{WIDGETS}/x/status") == created


async def test_job_defaults_and_generated_selector(client: Client) -> None:
    body = job("migrate")
    body["spec"]["template"]["metadata"] = {"labels": {"app": "m"}}
    created = await client.ok("POST", JOBS, body)
    spec = created["spec"]
    uid = created["metadata"]["uid"]
    assert (spec["backoffLimit"], spec["completions"], spec["parallelism"], spec["suspend"]) == (
        6,
        1,
        1,
        False,
    )
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "migrate"
    assert labels["controller-uid"] == uid
    assert created["metadata"]["labels"] == {"app": "m"}
    container = spec["template"]["spec"]["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert created["status"] == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"spec": {"template": {"spec": {"restartPolicy": "Always"}}}},
            "spec.template.spec.restartPolicy",
        ),
        ({"metadata": {"name": "j" * 64}}, "spec.template.labels"),
        ({"spec": {"backoffLimit": -1}}, "spec.backoffLimit"),
        (
            {
                "spec": {
                    "podFailurePolicy": {
                        "rules": [
                            {
                                "action": "FailJob",
                                "onExitCodes": {"operator": "In", "values": [3, 2]},
                            }
                        ]
                    }
                }
            },
            "spec.podFailurePolicy.rules[0].onExitCodes.values[1]",
        ),
    ],
)
async def test_invalid_jobs_are_422(client: Client, change: dict[str, Any], field: str) -> None:
    status, body = await client.post(JOBS, merge_patch(job("j"), change))
    assert status == 422, body
    assert field in [c["field"] for c in body["details"]["causes"]], body["message"]
    assert body["message"].startswith('Job.batch "')


async def test_job_template_is_immutable(client: Client) -> None:
    await client.ok("POST", JOBS, job("j"))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "other"}]}}}}
    status, body = await client.patch(f"{JOBS}/j", patch)
    assert status == 422
    assert "field is immutable" in body["message"]


async def test_deployment_selector_must_match_its_template(client: Client) -> None:
    body = deployment("d")
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    status, answer = await client.post(DEPLOYMENTS, body)
    assert status == 422
    assert "`selector` does not match template `labels`" in answer["message"]


async def test_secret_string_data_becomes_base64_data(client: Client) -> None:
    secret = {"metadata": {"name": "s"}, "stringData": {"url": "postgresql://u:p@h/db"}}
    created = await client.ok("POST", "/api/v1/namespaces/default/secrets", secret)
    assert created["data"] == {"url": "cG9zdGdyZXNxbDovL3U6cEBoL2Ri"}
    assert created["type"] == "Opaque" and "stringData" not in created


async def test_pod_starts_pending_and_serves_its_log(client: Client, api: ApiServer) -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    created = await client.ok("POST", PODS, pod)
    assert created["status"]["phase"] == "Pending"
    assert created["spec"]["restartPolicy"] == "Always"
    assert await client.get(f"{PODS}/p/log") == (200, "")
    api.set_pod_log("default", "p", "main", "one\ntwo\nthree\n")
    assert await client.get(f"{PODS}/p/log") == (200, "one\ntwo\nthree\n")
    assert await client.get(f"{PODS}/p/log", tailLines="2") == (200, "two\nthree\n")
    assert await client.get(f"{PODS}/p/log", container="main", limitBytes="3") == (200, "one")
    assert (await client.get(f"{PODS}/p/log", container="nope"))[0] == 400
    assert (await client.get(f"{PODS}/missing/log"))[0] == 404


@pytest.mark.parametrize(("path", "body"), WITH_STATUS, ids=IDS)
async def test_writes_never_change_earlier_stored_objects(
    api: ApiServer, client: Client, path: str, body: dict[str, Any]
) -> None:
    await client.ok("POST", path, body)
    name = body["metadata"]["name"]
    await client.ok(
        "PATCH", f"{path}/{name}/status", {"status": {"a": {"b": 1}}}, content_type=MERGE
    )
    kept = [(e.obj, clone(e.obj)) for e in api.registry.store.events_after(0)]
    status = {"status": {"a": {"b": 2, "c": [1]}}, "spec": {"forged": True}}
    await client.ok("PATCH", f"{path}/{name}/status", status, content_type=MERGE)
    labels = {"metadata": {"labels": {"x": "y"}}, "status": {"a": {"b": 3}}}
    await client.ok("PATCH", f"{path}/{name}", labels, content_type=MERGE)
    assert all(stored == snapshot for stored, snapshot in kept)
    final = await client.ok("GET", f"{path}/{name}")
    assert final["status"]["a"] == {"b": 2, "c": [1]} and "forged" not in final.get("spec", {})
    assert final["metadata"]["labels"] == {"x": "y"}
