"""Deployments in the emulated cluster, as the rollout-gate tests create and inspect them."""

from __future__ import annotations

from typing import Any

from alembic_operator.core.gates import HELD_BY_ANNOTATION
from tests.conftest import MIGRATIONS
from tests.operator.harness import NS, Cluster, add_image, wait_for

DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
APP = "registry.example.com/shop/app"
SIDECAR = "registry.example.com/mesh/proxy:3.1"


def image(tag: str) -> str:
    return f"{APP}:{tag}"


def register_image(cluster: Cluster, tag: str) -> str:
    """Make ``app:<tag>`` runnable by the kubelet (the same example migrations)."""
    return add_image(cluster, image(tag), MIGRATIONS)


def deployment(
    name: str,
    *,
    tag: str = "1.0",
    labels: dict[str, str] | None = None,
    paused: bool | None = None,
    sidecar: bool = False,
) -> dict[str, Any]:
    containers = [{"name": "app", "image": image(tag)}]
    if sidecar:
        containers.append({"name": "proxy", "image": SIDECAR})
    spec: dict[str, Any] = {
        "replicas": 2,
        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": name}},
            "spec": {"containers": containers},
        },
    }
    if paused is not None:
        spec["paused"] = paused
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
        "spec": spec,
    }


async def create_deployment(cluster: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    return await cluster.client.ok("POST", DEPLOYMENTS, body)


async def get_deployment(cluster: Cluster, name: str) -> dict[str, Any]:
    return await cluster.client.ok("GET", f"{DEPLOYMENTS}/{name}")


async def set_image(cluster: Cluster, name: str, tag: str) -> dict[str, Any]:
    """Change the app container's image, as ``kubectl set image`` or a chart upgrade would."""
    current = await get_deployment(cluster, name)
    containers = current["spec"]["template"]["spec"]["containers"]
    for c in containers:
        if c["name"] == "app":
            c["image"] = image(tag)
    return await cluster.client.ok(
        "PATCH",
        f"{DEPLOYMENTS}/{name}",
        {"spec": {"template": {"spec": {"containers": containers}}}},
        content_type="application/merge-patch+json",
    )


def held_by(body: dict[str, Any]) -> str | None:
    return (body["metadata"].get("annotations") or {}).get(HELD_BY_ANNOTATION)


def is_held(body: dict[str, Any], migration: str = "shop") -> bool:
    return bool(body["spec"].get("paused")) and held_by(body) == migration


def is_free(body: dict[str, Any]) -> bool:
    return not body["spec"].get("paused") and held_by(body) is None


async def wait_held(cluster: Cluster, name: str, migration: str = "shop") -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = await get_deployment(cluster, name)
        return body if is_held(body, migration) else None

    return await wait_for(probe, within=30, what=f"Deployment {name} to be held by {migration}")


async def wait_free(cluster: Cluster, name: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = await get_deployment(cluster, name)
        return body if is_free(body) else None

    return await wait_for(probe, within=60, what=f"Deployment {name} to be released")


async def deployment_events(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    """The operator's Events on the Deployment ``name``, in posting order."""
    events = [
        e for e in await cluster.events(name) if e["involvedObject"].get("kind") == "Deployment"
    ]
    return sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))


async def migration_events(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    events = [
        e
        for e in await cluster.events(name)
        if e["involvedObject"].get("kind") == "DatabaseMigration"
    ]
    return sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))


def gate_condition(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == "DeploymentsHeld"), None)
