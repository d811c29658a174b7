"""The mutating admission webhook, served by the real operator over TLS (a provided cert dir).

Real AdmissionReview JSON (admission.k8s.io/v1, as the apiserver sends it) is POSTed to the
operator's webhook server; the answers are checked as the apiserver would read them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alembic_operator.controller.webhooks import WEBHOOK_CERT_DIR_ENV, WEBHOOK_ID, WEBHOOK_PORT_ENV
from alembic_operator.core.gates import HELD_BY_ANNOTATION
from tests.databases import Database
from tests.gating.helpers import deployment, register_image
from tests.operator.harness import NS, Cluster, job_name_for, migration, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certificate(directory: Path) -> Path:
    """A self-signed tls.crt/tls.key pair for 127.0.0.1 (what cert-manager would mount)."""
    if shutil.which("openssl") is None:
        pytest.fail("the webhook tests need the openssl command (Debian package openssl)")
    directory.mkdir()
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt"),
            "-subj", "/CN=alembic-operator-webhook", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return directory


class Webhook:
    def __init__(self, port: int, cafile: Path) -> None:
        self.url = f"https://127.0.0.1:{port}/{WEBHOOK_ID}"
        self.ssl = ssl.create_default_context(cafile=str(cafile))

    async def review(
        self,
        obj: dict[str, Any],
        *,
        operation: str = "CREATE",
        old: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
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
                "namespace": NS,
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
    certs = make_certificate(tmp_path / "certs")
    port = free_port()
    await cluster.stop_operator()
    monkeypatch.setenv(WEBHOOK_PORT_ENV, str(port))
    monkeypatch.setenv(WEBHOOK_CERT_DIR_ENV, str(certs))
    await cluster.start_operator()

    async def listening() -> bool:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await wait_for(listening, what="the webhook server to listen")
    yield Webhook(port, certs / "tls.crt")


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
