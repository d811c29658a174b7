"""The mutating admission webhook, served by the real operator over TLS (a provided cert dir).

Two views: real AdmissionReview JSON (admission.k8s.io/v1, as the apiserver sends it) POSTed to
the operator's webhook server, its answers checked as the apiserver would read them; and the
real kube-apiserver calling it through the chart's MutatingWebhookConfiguration (addressed by
URL, scoped to the test's namespace), so a real Deployment CREATE/UPDATE is held in the request
itself and the real Deployment controller never makes a ReplicaSet for what is held.
"""

from __future__ import annotations

from typing import Any

from alembic_operator.core.gates import HELD_BY_ANNOTATION
from tests.databases import Database
from tests.gating.admission import (
    Webhook,
    apply_ops,
    create_deployment_as_user,
    patch_ops,
    registered,
    webhook,
)
from tests.gating.helpers import (
    controller_saw,
    deployment,
    get_deployment,
    held_by,
    image,
    register_image,
    replica_sets,
    wait_free,
    wait_gate,
    wait_rolled_out,
)
from tests.operator.harness import Cluster, job_name_for, migration, stays

__all__ = ["webhook"]  # the fixture


def gated() -> dict[str, Any]:
    return migration("shop", gate={"deployments": ["web"]})


async def test_admission_reviews_patch_only_what_the_rule_holds(
    cluster: Cluster, webhook: Webhook, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "2.0")
    created = await cluster.create(gated())
    running = cluster.kubelet.hold(job_name_for(created), at="start")
    await cluster.wait_phase("shop", "Running")

    # Gated, migration not done: the CREATE is allowed, with the hold patched in.
    web = deployment("web")
    response = await webhook.review(web)
    assert response["allowed"] is True
    patched = apply_ops(web, patch_ops(response))
    assert patched["spec"]["paused"] is True
    assert patched["metadata"]["annotations"][HELD_BY_ANNOTATION] == "shop"
    assert "rollout held by alembic-operator" in response["warnings"][0]

    # Not gated: allowed and untouched.
    response = await webhook.review(deployment("other"))
    assert response["allowed"] is True
    assert "patch" not in response

    # Paused by a person: untouched (never becomes ours to release).
    response = await webhook.review(deployment("web", paused=True))
    assert (response["allowed"], "patch" in response) == (True, False)

    running.set()
    await cluster.wait_phase("shop", "Succeeded")

    # Succeeded for 1.0: a 1.0 template passes untouched ...
    response = await webhook.review(deployment("web"))
    assert (response["allowed"], "patch" in response) == (True, False)
    # ... an update to 2.0 is held in the request itself ...
    old, new = deployment("web"), deployment("web", tag="2.0")
    response = await webhook.review(new, operation="UPDATE", old=old)
    assert response["allowed"] is True
    patched = apply_ops(new, patch_ops(response))
    assert (patched["spec"]["paused"], patched["metadata"]["annotations"][HELD_BY_ANNOTATION]) == (
        True,
        "shop",
    )
    # ... and an update that leaves the template alone (the operator's own unpause) is not.
    response = await webhook.review(new, operation="UPDATE", old=new)
    assert (response["allowed"], "patch" in response) == (True, False)


async def test_the_apiserver_holds_a_gated_deployment_in_the_request(
    cluster: Cluster, webhook: Webhook, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "1.0")
    register_image(cluster, "2.0")
    created = await cluster.create(gated())
    running = cluster.kubelet.hold(job_name_for(created), at="start")
    await cluster.wait_phase("shop", "Running")

    async with registered(cluster, webhook):
        # CREATE while the migration runs: stored paused and held, with the webhook's warning.
        web, warnings = await create_deployment_as_user(cluster, deployment("web"))
        assert (web["spec"]["paused"], held_by(web)) == (True, "shop")
        assert any("rollout held by alembic-operator" in w for w in warnings), warnings
        # ... so the real Deployment controller never makes it a ReplicaSet (no pod starts).
        await controller_saw(cluster, "web")
        assert await stays(cluster, lambda: replica_sets(cluster, "web")) == {}
        # Not gated: stored as sent, rolled out at once.
        other, warnings = await create_deployment_as_user(cluster, deployment("other"))
        assert (other["spec"].get("paused"), held_by(other), warnings) == (None, None, [])
        await wait_rolled_out(cluster, "other", "1.0")

        # Success: the operator's own unpause (an UPDATE that leaves the template alone) passes.
        running.set()
        await cluster.wait_phase("shop", "Succeeded")
        await wait_free(cluster, "web")
        await wait_rolled_out(cluster, "web", "1.0")

        # An UPDATE to an image the migration has not run for is held in the request itself:
        # the controller sees the new template and the pause at once, no 2.0 ReplicaSet appears.
        current = await get_deployment(cluster, "web")
        current["spec"]["template"]["spec"]["containers"][0]["image"] = image("2.0")
        updated = await cluster.client.ok("PUT", f"{cluster.DEPLOYMENTS}/web", current)
        assert (updated["spec"]["paused"], held_by(updated)) == (True, "shop")
        await controller_saw(cluster, "web")
        assert await stays(cluster, lambda: replica_sets(cluster, "web")) == {image("1.0"): 2}
        # The operator's reconcile agrees with the admission decision (and adds nothing).
        await wait_gate(cluster, {"held": True, "deployments": ["web"]}, reason="ImageMismatch")
        assert (await cluster.status("shop"))["phase"] == "Succeeded"
