"""The mutating admission webhook, served by the real operator over TLS (a provided cert dir).

Two views: real AdmissionReview JSON (admission.k8s.io/v1, as the apiserver sends it) POSTed to
the operator's webhook server, its answers checked as the apiserver would read them; and the
real kube-apiserver calling it through the chart's MutatingWebhookConfiguration (addressed by
URL, scoped to the test's namespace), so a real Deployment CREATE/UPDATE is held in the request
itself and the real Deployment controller never makes a ReplicaSet for what is held.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alembic_operator.controller.webhooks import (
    WEBHOOK_ADDR_ENV,
    WEBHOOK_CERT_DIR_ENV,
    WEBHOOK_ID,
    WEBHOOK_PORT_ENV,
)
from alembic_operator.core.gates import HELD_BY_ANNOTATION
from tests.cluster.controlplane import ControlPlane
from tests.cluster.fixtures import helm_template
from tests.databases import Database
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
from tests.operator.harness import Cluster, job_name_for, migration, stays, wait_for

WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certificate(control_plane: ControlPlane, directory: Path, name: str) -> Path:
    """tls.crt/tls.key for 127.0.0.1 signed by the cluster's CA (what cert-manager would mount)."""
    pair = control_plane.ca.issue(
        name, common_name="alembic-operator-webhook", hosts=("127.0.0.1",), server=True
    )
    directory.mkdir()
    shutil.copyfile(pair.cert, directory / "tls.crt")
    shutil.copyfile(pair.key, directory / "tls.key")
    return directory


class Webhook:
    def __init__(self, port: int, cafile: Path, namespace: str) -> None:
        self.url = f"https://127.0.0.1:{port}/{WEBHOOK_ID}"
        self.ssl = ssl.create_default_context(cafile=str(cafile))
        self.namespace = namespace

    async def review(
        self,
        obj: dict[str, Any],
        *,
        operation: str = "CREATE",
        old: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        # The apiserver sends objects with the request's namespace filled in.
        obj = {**obj, "metadata": {**obj["metadata"], "namespace": self.namespace}}
        if old is not None:
            old = {**old, "metadata": {**old["metadata"], "namespace": self.namespace}}
        request_uid = str(uuid.uuid4())
        gvk = {"group": "apps", "version": "v1", "kind": "Deployment"}
        gvr = {"group": "apps", "version": "v1", "resource": "deployments"}
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": request_uid,
                "kind": gvk,
                "resource": gvr,
                "requestKind": gvk,
                "requestResource": gvr,
                "name": obj["metadata"]["name"],
                "namespace": self.namespace,
                "operation": operation,
                "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
                "object": obj,
                "oldObject": old,
                "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
            },
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, json=review, ssl=self.ssl) as response,
        ):
            assert response.status == 200, await response.text()
            answer = await response.json()
        assert answer["apiVersion"] == "admission.k8s.io/v1"
        assert answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == request_uid
        return dict(answer["response"])


def patch_ops(response: dict[str, Any]) -> list[dict[str, Any]]:
    if "patch" not in response:
        return []
    assert response["patchType"] == "JSONPatch"
    return list(json.loads(base64.b64decode(response["patch"])))


def apply_ops(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Enough of RFC 6902 for these patches (add/replace on object paths)."""
    result = json.loads(json.dumps(obj))
    for op in ops:
        assert op["op"] in ("add", "replace"), op
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")
        ]
        target = result
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = op["value"]
    return dict(result)


@pytest.fixture
async def webhook(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Webhook]:
    """The operator restarted with --webhook-port/--webhook-cert-dir (via their env variables)."""
    certs = make_certificate(cluster.control_plane, tmp_path / "certs", f"webhook-{cluster.ns}")
    port = free_port()
    await cluster.stop_operator()
    monkeypatch.setenv(WEBHOOK_PORT_ENV, str(port))
    monkeypatch.setenv(WEBHOOK_CERT_DIR_ENV, str(certs))
    monkeypatch.setenv(WEBHOOK_ADDR_ENV, "127.0.0.1")
    await cluster.start_operator()

    async def listening() -> bool:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await wait_for(listening, what="the webhook server to listen")
    yield Webhook(port, cluster.control_plane.ca.cert, cluster.ns)


def chart_webhook_configuration(cluster: Cluster, url_base: str) -> dict[str, Any]:
    """The chart's MutatingWebhookConfiguration for a release watching only this namespace,
    with a per-test name and the operator addressed by URL (no Service, no kube-proxy here)."""
    ca_bundle = base64.b64encode(cluster.control_plane.ca.pem).decode()
    rendered = helm_template(
        "--set", "webhook.enabled=true",
        "--set", "webhook.existingSecret=unused",
        "--set", f"webhook.caBundle={ca_bundle}",
        "--set", f"watchNamespaces={{{cluster.ns}}}",
    )  # fmt: skip
    (config,) = [o for o in rendered if o["kind"] == "MutatingWebhookConfiguration"]
    config["metadata"]["name"] = f"alembic-operator-{cluster.ns}"
    assert [h["name"] for h in config["webhooks"]] == [
        "gate.deployments.alembic-operator.dev",
        "gate.pods.alembic-operator.dev",
    ]
    for hook in config["webhooks"]:
        selected = [
            e for e in hook["namespaceSelector"]["matchExpressions"] if e["operator"] == "In"
        ]
        assert selected == [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [cluster.ns]}
        ]  # only this test's namespace: other tests never meet this webhook
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {"url": f"{url_base}{path}", "caBundle": ca_bundle}
    return config


async def create_deployment_as_user(
    cluster: Cluster, body: dict[str, Any], *, dry_run: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """POST a Deployment as the admin; the stored object and the apiserver's Warning headers."""
    params = {"dryRun": "All"} if dry_run else {}
    async with cluster.client.session.post(
        cluster.DEPLOYMENTS, json=body, params=params
    ) as response:
        answer = await response.json()
        assert response.status == 201, answer
        return answer, response.headers.getall("Warning", [])


@contextlib.asynccontextmanager
async def registered(cluster: Cluster, webhook: Webhook) -> AsyncIterator[dict[str, Any]]:
    """The chart's webhook configuration on the real apiserver, in use, deleted afterwards.

    The apiserver loads webhook configurations asynchronously; it is in use once a dry-run
    create of ``web`` comes back paused (call this while a migration holds ``web``).
    """
    config = chart_webhook_configuration(cluster, webhook.url.rsplit("/", 1)[0])
    await cluster.client.ok("POST", WEBHOOKS, config)
    try:

        async def in_use() -> bool:
            created, _ = await create_deployment_as_user(cluster, deployment("web"), dry_run=True)
            return bool(created["spec"].get("paused"))

        await wait_for(in_use, what="the apiserver to call the webhook")
        yield config
    finally:
        await cluster.client.ok("DELETE", f"{WEBHOOKS}/{config['metadata']['name']}")


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
        assert await stays(lambda: replica_sets(cluster, "web"), seconds=1.0) == {}
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
        assert await stays(lambda: replica_sets(cluster, "web"), seconds=1.0) == {image("1.0"): 2}
        # The operator's reconcile agrees with the admission decision (and adds nothing).
        await wait_gate(cluster, {"held": True, "deployments": ["web"]}, reason="ImageMismatch")
        assert (await cluster.status("shop"))["phase"] == "Succeeded"
