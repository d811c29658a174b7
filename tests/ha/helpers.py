"""Objects the HA tests create: a gating migration, Deployments, the certificate Secret."""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509

from alembic_operator.core.gates import HELD_BY_ANNOTATION
from tests.cluster.client import Client
from tests.cluster.fixtures import APP_IMAGE
from tests.ha.harness import CONFIGURATION_PATH, SECRET_PATH
from tests.operator.harness import migration


def dbm_path(namespace: str) -> str:
    return f"/apis/alembic-operator.dev/v1alpha1/namespaces/{namespace}/databasemigrations"


def deployments_path(namespace: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments"


def gating_migration(name: str = "shop", *, secret: str = "shop-db") -> dict[str, Any]:
    """A migration holding every Deployment labelled ``app: web`` until it succeeded."""
    return migration(name, secret=secret, gate={"selector": {"matchLabels": {"app": "web"}}})


def deployment(
    name: str, *, app: str = "web", replicas: int = 0, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": app, **(labels or {})}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app, "instance": name}},
            "template": {
                "metadata": {"labels": {"app": app, "instance": name}},
                "spec": {"containers": [{"name": "app", "image": APP_IMAGE}]},
            },
        },
    }


def held_by(body: dict[str, Any]) -> str | None:
    return ((body.get("metadata") or {}).get("annotations") or {}).get(HELD_BY_ANNOTATION)


def held_in_request(answer: dict[str, Any], migration: str = "shop") -> bool:
    """The answer to the CREATE itself is paused and marked: the webhook mutated the request."""
    return bool((answer.get("spec") or {}).get("paused")) and held_by(answer) == migration


async def own_secret(kube: Client) -> dict[str, bytes] | None:
    status, secret = await kube.request("GET", SECRET_PATH)
    if status != 200:
        return None
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


async def ca_bundles(kube: Client) -> list[str | None]:
    config = await kube.ok("GET", CONFIGURATION_PATH)
    return [(h.get("clientConfig") or {}).get("caBundle") for h in config["webhooks"]]


def leaf(secret: dict[str, bytes]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(secret["tls.crt"])
