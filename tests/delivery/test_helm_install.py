"""``helm install`` of the chart with its default values gives a race-free gate and two replicas.

On the real control plane, with the real helm: the chart is installed into a fresh namespace with
**no value set** (the operator image's reference is the chart's own, which the test kubelet maps
to this checkout). The test kubelet runs the chart's pods as they run in a cluster: each replica
in its own network namespace with its own pod IP (:mod:`tests.cluster.podnet`), its ServiceAccount
token projected at the standard path and ``KUBERNETES_SERVICE_*`` set, so the operator loads its
in-cluster configuration unchanged. The apiserver reaches the webhook through the chart's
Service (``clientConfig.service``, resolved to the EndpointSlice's pod IPs by
``--enable-aggregator-routing``: no kube-proxy, no ``clientConfig.url`` rewrite).

The only set-up outside the chart: the session's control plane installed the CRD before its
controller manager started, so the test marks it as the release's (helm's ownership label and
annotations) for helm to adopt it, as an operator would when moving a CRD into a release.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from alembic_operator.core.admission import POD_GATE
from alembic_operator.core.gates import HELD_BY_ANNOTATION
from tests.cluster.apiclient import ApiClient
from tests.cluster.client import Client
from tests.cluster.controlplane import REPO, ControlPlane
from tests.cluster.fixtures import APP_IMAGE, MIGRATIONS, tool
from tests.cluster.kubelet import TestKubelet
from tests.cluster.podnet import PodNetwork
from tests.cluster.processes import ImageSpec
from tests.operator.harness import migration, wait_for

RELEASE = "ao"
FULLNAME = f"{RELEASE}-alembic-operator"
CHART = REPO / "charts" / "alembic-operator"
# The chart's default image is this repository at the chart's appVersion: any tag is this checkout.
OPERATOR_REPOSITORY = "ghcr.io/alembic-operator/alembic-operator"
CRD = "databasemigrations.alembic-operator.dev"
WITHIN = 90  # deadlines, not sleeps: two operator processes start on a loaded machine


def helm(control_plane: ControlPlane, home: Path, *args: str) -> str:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    done = subprocess.run(
        [str(tool("helm")), f"--kubeconfig={control_plane.admin_kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )
    if done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def adopt_crd(control_plane: ControlPlane, namespace: str | None) -> None:
    """Mark the session's CRD as this release's, so that ``helm install`` takes it over
    (``None``: unmark it again; the CRD stays, as the chart's ``crds.keep`` wants)."""
    patch = {
        "metadata": {
            "labels": {"app.kubernetes.io/managed-by": "Helm" if namespace else None},
            "annotations": {
                "meta.helm.sh/release-name": RELEASE if namespace else None,
                "meta.helm.sh/release-namespace": namespace,
            },
        }
    }
    control_plane.request(
        "PATCH",
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}",
        patch,
        content_type="application/merge-patch+json",
    )


@pytest.fixture
async def pod_kubelet(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> AsyncIterator[TestKubelet]:
    """A kubelet for this namespace whose pods get their own network (and so their own IPs)."""
    api = await ApiClient(control_plane.server, ssl_context=control_plane.ssl_context()).open()
    node = TestKubelet(
        api,
        node=f"node-{namespace}"[:63],
        images={
            OPERATOR_REPOSITORY: ImageSpec(root=REPO, entrypoint=("alembic-operator",)),
            APP_IMAGE: ImageSpec(root=MIGRATIONS),
        },
        workdir=tmp_path / "kubelet",
        ca=control_plane.ca,
        namespace=namespace,
        network=PodNetwork(apiserver_port=control_plane.port),
    )
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
        await api.close()


@pytest.fixture
def release(
    control_plane: ControlPlane, namespace: str, pod_kubelet: TestKubelet, tmp_path: Path
) -> Any:
    """``helm install`` with default values; ``helm uninstall`` afterwards (the webhook
    configuration is cluster-scoped: none is left behind)."""
    adopt_crd(control_plane, namespace)
    helm(control_plane, tmp_path / "helm", "install", RELEASE, str(CHART), "--namespace", namespace)
    try:
        yield RELEASE
    finally:
        helm(control_plane, tmp_path / "helm", "uninstall", RELEASE, "--namespace", namespace)
        adopt_crd(control_plane, None)


def operator_logs(kubelet: TestKubelet, namespace: str, pods: list[str]) -> str:
    return "\n".join(f"--- {p}:\n{kubelet.log_of(namespace, p, 'operator')[-3000:]}" for p in pods)


async def ready_replicas(kube: Client, namespace: str) -> list[dict[str, Any]] | None:
    """The operator's pods once its Deployment has two Ready replicas with distinct pod IPs."""
    deployment = await kube.ok(
        "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{FULLNAME}"
    )
    if (deployment.get("status") or {}).get("readyReplicas") != 2:
        return None
    listed = await kube.ok(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods",
        params={"labelSelector": "app.kubernetes.io/component=operator"},
    )
    running = [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]
    ips = {(p.get("status") or {}).get("podIP") for p in running}
    return running if len(running) == 2 and len(ips) == 2 and None not in ips else None


async def webhook_endpoints(kube: Client, namespace: str) -> set[tuple[str, int]]:
    """(IP, port) of every ready endpoint of the webhook Service's EndpointSlices."""
    slices = await kube.ok(
        "GET",
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
        params={"labelSelector": f"kubernetes.io/service-name={FULLNAME}-webhook"},
    )
    found: set[tuple[str, int]] = set()
    for piece in slices["items"]:
        ports = [p["port"] for p in piece.get("ports") or []]
        for endpoint in piece.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready"):
                found.update((address, port) for address in endpoint["addresses"] for port in ports)
    return found


async def admission_review(ip: str, ca: bytes, host: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST an AdmissionReview to one replica's webhook (TLS verified against the caBundle)."""
    context = ssl.create_default_context(cadata=ca.decode())
    reader, writer = await asyncio.open_connection(ip, 9443, ssl=context, server_hostname=host)
    payload = json.dumps(body).encode()
    writer.write(
        f"POST /gate-deployments HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return dict(json.loads(raw.split(b"\r\n\r\n", 1)[1]))


def deployment(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"instance": name}},
            "template": {
                "metadata": {"labels": {**labels, "instance": name}},
                "spec": {"containers": [{"name": "app", "image": APP_IMAGE}]},
            },
        },
    }


def review_of(namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    resource = {"group": "apps", "version": "v1", "resource": "deployments"}
    kind = {"group": "apps", "version": "v1", "kind": "Deployment"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000001",
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "name": obj["metadata"]["name"],
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "admin", "groups": ["system:masters"]},
            "object": {**obj, "metadata": {**obj["metadata"], "namespace": namespace}},
            "oldObject": None,
            "dryRun": True,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


async def test_helm_install(
    namespace: str, pod_kubelet: TestKubelet, release: str, kube: Client
) -> None:
    """Two Ready replicas, one Lease holder, the certificate and caBundle; both replicas answer
    admission; the apiserver's CREATE of a gated Deployment is paused through the Service; a pod
    declaring the migration gets the scheduling gate. (A short test name: the namespace is
    named after it, and the chart's cluster-scoped names include it, within 63 characters.)"""
    ns = namespace

    async def until(probe: Callable[[], Awaitable[Any]], what: str) -> Any:
        """``wait_for``, failing with the pods' statuses and the operators' logs."""
        try:
            return await wait_for(probe, within=WITHIN, what=what)
        except AssertionError as exc:
            listed = await kube.ok("GET", f"/api/v1/namespaces/{ns}/pods")
            states = json.dumps({p["metadata"]["name"]: p["status"] for p in listed["items"]})
            names = sorted({r.pod for r in pod_kubelet.runs if r.namespace == ns})
            logs = operator_logs(pod_kubelet, ns, names)
            raise AssertionError(f"{exc}\n{states[:4000]}\n{logs}") from None

    pods = await until(lambda: ready_replicas(kube, ns), "two Ready operator replicas")
    names = sorted(p["metadata"]["name"] for p in pods)
    ips = {p["status"]["podIP"] for p in pods}

    # One Lease holder among the two; the operator's own certificate and its caBundle.
    async def holder() -> str | None:
        status, lease = await kube.get(
            f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{FULLNAME}"
        )
        return (lease.get("spec") or {}).get("holderIdentity") if status == 200 else None

    leader = await until(holder, "the Lease held")
    assert leader in names

    async def ca_bundle() -> bytes | None:
        status, secret = await kube.get(f"/api/v1/namespaces/{ns}/secrets/{FULLNAME}-webhook-tls")
        if status != 200:
            return None
        configuration = await kube.ok(
            "GET",
            f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{FULLNAME}-{ns}",
        )
        bundles = {(h["clientConfig"]).get("caBundle") for h in configuration["webhooks"]}
        if len(bundles) != 1 or None in bundles:
            return None
        (bundle,) = bundles
        assert "service" in configuration["webhooks"][0]["clientConfig"]  # no URL rewrite
        return base64.b64decode(bundle) if secret.get("data") else None

    ca = await until(ca_bundle, "the certificate Secret and the caBundle written")

    # Both replicas are the webhook Service's endpoints, and each answers admission itself.
    async def both_endpoints() -> set[tuple[str, int]] | None:
        found = await webhook_endpoints(kube, ns)
        return found if found == {(ip, 9443) for ip in ips} else None

    await until(both_endpoints, "both replicas ready in the webhook Service's EndpointSlice")
    host = f"{FULLNAME}-webhook.{ns}.svc"

    # The gate: a migration that cannot succeed soon (its image is unknown to the kubelet).
    await kube.ok(
        "POST",
        f"/api/v1/namespaces/{ns}/secrets",
        {"metadata": {"name": "shop-db"}, "stringData": {"url": "postgresql://x@127.0.0.1/x"}},
    )
    gated = migration(
        "shop",
        image="registry.example.com/shop/missing:1.0",
        gate={"selector": {"matchLabels": {"app": "web"}}},
    )
    await kube.ok(
        "POST", f"/apis/alembic-operator.dev/v1alpha1/namespaces/{ns}/databasemigrations", gated
    )

    async def serves(ip: str) -> dict[str, Any] | None:
        current = await ca_bundle()  # the replicas may still settle on one certificate
        try:
            review = review_of(ns, deployment("probe", {"app": "web"}))
            return await admission_review(ip, current or ca, host, review)
        except OSError:  # ssl.SSLError included
            return None  # this replica's webhook server is not listening (or not renewed) yet

    for ip in sorted(ips):
        answer = await until(functools.partial(serves, ip), f"the replica at {ip} serving")
        response = answer["response"]
        patch = json.loads(base64.b64decode(response.get("patch") or "W10="))
        assert response["allowed"] is True, (ip, response)
        assert any(op["path"] == "/spec/paused" and op.get("value") is True for op in patch), (
            ip,
            patch,
        )

    # Through the Service: the apiserver's own CREATE is paused and marked inside the request.
    created = await kube.ok(
        "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("web", {"app": "web"})
    )
    assert created["spec"].get("paused") is True, created["spec"]
    assert created["metadata"]["annotations"][HELD_BY_ANNOTATION] == "shop"

    # The pod-template label: a pod declaring the migration is created with the scheduling gate.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker", "labels": {"alembic-operator.dev/migration": "shop"}},
        "spec": {"containers": [{"name": "app", "image": APP_IMAGE}]},
    }
    admitted = await kube.ok("POST", f"/api/v1/namespaces/{ns}/pods", pod)
    gates = [g["name"] for g in admitted["spec"].get("schedulingGates") or []]
    assert gates == [POD_GATE], admitted["spec"]
    for name in names:
        assert "Traceback" not in pod_kubelet.log_of(ns, name, "operator"), name
