"""Every replica down, with the chart's default ``failurePolicy: Fail``: what still works.

The webhook selects Deployment CREATE/UPDATE in the watched namespaces (never kube-system, never
the operator's own objects). With no replica to answer, those are refused — gated or not: a
Deployment's gate is decided from its migration, which the apiserver's selectors cannot see — so
nothing rolls out unchecked. Everything else goes on: existing pods keep running, scaling (the
``scale`` subresource) and the ReplicaSets' pod creation are not intercepted, other namespaces
and the operator's own Deployment are not selected. docs/gating.md and docs/runbook.md.
"""

from __future__ import annotations

import contextlib

from tests.cluster.client import Client
from tests.cluster.controlplane import ControlPlane
from tests.cluster.fixtures import OPERATOR_RELEASE, namespace_name
from tests.cluster.kubelet import TestKubelet
from tests.ha.harness import Replicas
from tests.ha.helpers import (
    dbm_path,
    deployment,
    deployments_path,
    gating_migration,
    held_in_request,
)
from tests.operator.harness import wait_for


async def test_operator_fully_down_fail_policy(
    replicas: Replicas,
    kube: Client,
    namespace: str,
    kubelet: TestKubelet,
    control_plane: ControlPlane,
) -> None:
    await replicas.start("replica-a")
    await kube.ok("POST", dbm_path(namespace), gating_migration())

    async def known() -> bool:
        body = await kube.ok("GET", f"{dbm_path(namespace)}/shop")
        return bool((body.get("status") or {}).get("conditions"))

    await wait_for(known, within=30, what="the migration's first status")
    held = await kube.ok("POST", deployments_path(namespace), deployment("web"))
    assert held_in_request(held)
    api = await kube.ok("POST", deployments_path(namespace), deployment("api", app="api"))
    assert not api["spec"].get("paused")

    await replicas.stop_all()  # the whole operator is down

    refused: dict[str, tuple[int, object]] = {}
    for name, body in [("web-2", deployment("web-2")), ("api-2", deployment("api-2", app="api"))]:
        status, answer = await kube.request("POST", deployments_path(namespace), body)
        refused[name] = (status, answer)
    for name, (status, answer) in refused.items():
        assert status == 500, (name, answer)
        assert 'failed calling webhook "gate.deployments.alembic-operator.dev"' in str(answer)
    # An image change of the held Deployment is refused too: nothing rolls out unchecked.
    status, answer = await kube.request(
        "PATCH",
        f"{deployments_path(namespace)}/api",
        {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}},
        content_type="application/merge-patch+json",
    )
    assert status == 500, answer

    # Not intercepted: scaling an existing Deployment, and the pods its ReplicaSet creates.
    await kube.ok(
        "PATCH",
        f"{deployments_path(namespace)}/api/scale",
        {"spec": {"replicas": 1}},
        content_type="application/merge-patch+json",
    )

    async def api_pod_bound() -> bool:
        pods = await kube.ok(
            "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": "app=api"}
        )
        return any(p["spec"].get("nodeName") for p in pods["items"])

    await wait_for(api_pod_bound, within=60, what="the ReplicaSet's new pod to be bound")
    # Pods: one declaring a migration (the label) waits, refused; any other pod is created
    # (its webhook fails open: self-healing goes on while the operator is down).
    pods_path = f"/api/v1/namespaces/{namespace}/pods"
    labelled = {
        "metadata": {"name": "report", "labels": {"alembic-operator.dev/migration": "shop"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/report:1"}]},
    }
    status, answer = await kube.request("POST", pods_path, labelled)
    assert status == 500 and 'failed calling webhook "gate.pods.alembic-operator.dev"' in str(
        answer
    ), answer
    plain = {**labelled, "metadata": {"name": "plain"}}
    await kube.ok("POST", pods_path, plain)
    # Not selected: the operator's own Deployment (its release's instance label).
    own = deployment("operator", app="op", labels={"app.kubernetes.io/instance": OPERATOR_RELEASE})
    await kube.ok("POST", deployments_path(namespace), own)
    # Not selected: a namespace the operator does not watch.
    other = namespace_name("test_operator_fully_down_other")
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}
    control_plane.request("POST", "/api/v1/namespaces", body)
    try:
        await kube.ok("POST", deployments_path(other), deployment("web"))
    finally:
        with contextlib.suppress(Exception):
            control_plane.request("DELETE", f"/api/v1/namespaces/{other}")

    # A replica back: admission works again, held in the request.
    await replicas.start("replica-b")
    answer = await kube.ok("POST", deployments_path(namespace), deployment("web-3"))
    assert held_in_request(answer)
