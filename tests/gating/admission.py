"""The operator's admission webhook on the real apiserver, for the gating tests.

The operator is restarted with a webhook server (a certificate signed by the cluster's CA, as
cert-manager would mount it); :func:`registered` puts the chart's MutatingWebhookConfiguration
(both webhooks: Deployments and pods) on the real apiserver, addressed by URL and scoped to the
test's namespace, and deletes it afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alembic_operator.controller.serving import (
    WEBHOOK_ADDR_ENV,
    WEBHOOK_CERT_DIR_ENV,
    WEBHOOK_PORT_ENV,
    WEBHOOK_TIMEOUT_ENV,
)
from alembic_operator.controller.webhooks import WEBHOOK_ID
from tests.cluster.controlplane import ControlPlane, free_port, is_listening
from tests.cluster.fixtures import helm_template
from tests.gating.helpers import deployment
from tests.operator.harness import Cluster, wait_for

WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
# The webhook's timeoutSeconds here (the chart's default is 5): on a 2-CPU machine shared by
# several test sessions a burst of rounds can starve the in-process operator for seconds, and a
# timeout would refuse the request (failurePolicy Fail) rather than test the gate's decision.
TIMEOUT_SECONDS = 15


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
    monkeypatch.setenv(WEBHOOK_TIMEOUT_ENV, str(TIMEOUT_SECONDS))
    await cluster.start_operator()

    await wait_for(lambda: is_listening(port), what="the webhook server to listen")
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
        "--set", f"webhook.timeoutSeconds={TIMEOUT_SECONDS}",
    )  # fmt: skip
    (config,) = [o for o in rendered if o["kind"] == "MutatingWebhookConfiguration"]
    config["metadata"]["name"] = f"alembic-operator-{cluster.ns}"
    assert [h["name"] for h in config["webhooks"]] == [
        "gate.deployments.alembic-operator.dev",
        "gate.pods.alembic-operator.dev",
        "gate.unlabelled-pods.alembic-operator.dev",
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


async def deployment_held(cluster: Cluster) -> bool:
    """A dry-run create of ``web`` comes back paused (while a migration holds ``web``)."""
    created, _ = await create_deployment_as_user(cluster, deployment("web"), dry_run=True)
    return bool(created["spec"].get("paused"))


async def pod_gated(cluster: Cluster) -> bool:
    """A dry-run create of a pod naming a migration that does not exist comes back gated."""
    pod = {
        "metadata": {
            "name": "probe",
            "labels": {"alembic-operator.dev/migration": "no-such-migration"},
        },
        "spec": {"containers": [{"name": "app", "image": "probe:1"}]},
    }
    status, created = await cluster.client.post(cluster.PODS, pod, params={"dryRun": "All"})
    assert status == 201, created
    return bool(created["spec"].get("schedulingGates"))


@contextlib.asynccontextmanager
async def registered(
    cluster: Cluster,
    webhook: Webhook,
    in_use: Callable[[Cluster], Awaitable[bool]] = deployment_held,
) -> AsyncIterator[dict[str, Any]]:
    """The chart's webhook configuration on the real apiserver, in use, deleted afterwards.

    The apiserver loads webhook configurations asynchronously; it is in use once ``in_use``
    says so (by default: a dry-run create of ``web`` comes back paused).
    """
    config = chart_webhook_configuration(cluster, webhook.url.rsplit("/", 1)[0])
    await cluster.client.ok("POST", WEBHOOKS, config)
    try:
        await wait_for(lambda: in_use(cluster), what="the apiserver to call the webhook")
        yield config
    finally:
        await cluster.client.ok("DELETE", f"{WEBHOOKS}/{config['metadata']['name']}")
