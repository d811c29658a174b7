"""Deployments on the real control plane, as the rollout-gate tests create and inspect them.

The Deployment and ReplicaSet controllers are the real ones (kube-controller-manager): a
Deployment gets ReplicaSets and pods. The application image's pods "serve" by sleeping (the
image's entrypoint below, as a web server would run until stopped), so a rollout completes for
real when the pods of the new ReplicaSet run; the sidecar image stays unknown to the test kubelet
(its container waits in ErrImagePull), which is fine where rollouts are not the point.
"""

from __future__ import annotations

from typing import Any

from alembic_operator.core.gates import HELD_BY_ANNOTATION
from tests.cluster.processes import ImageSpec
from tests.conftest import MIGRATIONS
from tests.operator.harness import Cluster, wait_for

APP = "registry.example.com/shop/app"
SIDECAR = "registry.example.com/mesh/proxy:3.1"
# The application image's ENTRYPOINT for Deployment pods (Jobs give their own command).
SERVE = ("sleep", "3600")  # a process as cheap as a pod can be (many run at once)


def image(tag: str) -> str:
    return f"{APP}:{tag}"


def register_image(cluster: Cluster, tag: str) -> str:
    """Make ``app:<tag>`` runnable by the kubelet: the example migrations, serving when run bare."""
    cluster.kubelet.images[image(tag)] = ImageSpec(root=MIGRATIONS, entrypoint=SERVE)
    return image(tag)


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
            "spec": {"containers": containers, "terminationGracePeriodSeconds": 1},
        },
    }
    if paused is not None:
        spec["paused"] = paused
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }


def _app_tags(body: dict[str, Any]) -> list[str]:
    containers = body["spec"]["template"]["spec"]["containers"]
    return [c["image"].rsplit(":", 1)[1] for c in containers if c["image"].startswith(f"{APP}:")]


async def create_deployment(cluster: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    for tag in _app_tags(body):
        register_image(cluster, tag)
    return await cluster.client.ok("POST", cluster.DEPLOYMENTS, body)


async def get_deployment(cluster: Cluster, name: str) -> dict[str, Any]:
    return await cluster.client.ok("GET", f"{cluster.DEPLOYMENTS}/{name}")


async def set_image(cluster: Cluster, name: str, tag: str) -> dict[str, Any]:
    """Change the app container's image, as ``kubectl set image`` or a chart upgrade would."""
    register_image(cluster, tag)
    current = await get_deployment(cluster, name)
    containers = current["spec"]["template"]["spec"]["containers"]
    for c in containers:
        if c["name"] == "app":
            c["image"] = image(tag)
    return await cluster.client.ok(
        "PATCH",
        f"{cluster.DEPLOYMENTS}/{name}",
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


# --- what the real Deployment controller made of it ---------------------------------------------


async def replica_sets(cluster: Cluster, name: str) -> dict[str, int]:
    """The app image of each ReplicaSet of the Deployment ``name`` -> its ``spec.replicas``."""
    listed = await cluster.client.ok(
        "GET",
        f"/apis/apps/v1/namespaces/{cluster.ns}/replicasets",
        params={"labelSelector": f"app.kubernetes.io/name={name}"},
    )
    out = {}
    for rs in listed["items"]:
        containers = rs["spec"]["template"]["spec"]["containers"]
        app = next(c["image"] for c in containers if c["name"] == "app")
        out[app] = int(rs["spec"].get("replicas", 0))
    return out


async def wait_rolled_out(cluster: Cluster, name: str, tag: str) -> dict[str, Any]:
    """Wait until every replica of ``name`` runs ``app:<tag>`` and is available (real rollout)."""

    async def done() -> dict[str, Any] | None:
        body = await get_deployment(cluster, name)
        status, want = body.get("status") or {}, body["spec"]["replicas"]
        sets = await replica_sets(cluster, name)
        finished = (
            status.get("observedGeneration") == body["metadata"]["generation"]
            and status.get("updatedReplicas") == want
            and status.get("availableReplicas") == want
            and status.get("replicas") == want
            and {i: n for i, n in sets.items() if n} == {image(tag): want}
        )
        return body if finished else None

    return await wait_for(done, within=60, what=f"Deployment {name} to roll out {tag}")


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


async def wait_gate(
    cluster: Cluster, gate: dict[str, Any], *, reason: str | None = None, name: str = "shop"
) -> dict[str, Any]:
    """The migration's status once ``status.gate`` (and the gate condition's reason) match.

    The operator pauses or resumes a Deployment first and writes the migration's status after,
    so a test that has just seen the Deployment change waits for the status too.
    """

    async def probe() -> dict[str, Any] | None:
        status = await cluster.status(name)
        condition = gate_condition(status) or {}
        matches = status.get("gate") == gate and reason in (None, condition.get("reason"))
        return status if matches else None

    return await wait_for(probe, what=f"{name}'s status.gate to be {gate} ({reason})")


async def controller_saw(cluster: Cluster, name: str) -> dict[str, Any]:
    """Wait until the Deployment controller has processed the Deployment's current spec."""

    async def probe() -> dict[str, Any] | None:
        body = await get_deployment(cluster, name)
        observed = (body.get("status") or {}).get("observedGeneration")
        return body if observed == body["metadata"]["generation"] else None

    return await wait_for(probe, what=f"the Deployment controller to observe {name}")
