"""DatabaseMigration bodies for the core tests: the examples, a minimal one, all knobs set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
UID = "6f1c2a4e-0d7b-4c8e-9a51-3b2f7e9d1c20"
RUNNER_IMAGE = "ghcr.io/alembic-operator/alembic-operator:0.1.0"


def metadata(name: str = "shop-schema", *, uid: str = UID, generation: int = 3) -> dict[str, Any]:
    return {"name": name, "namespace": "shop", "uid": uid, "generation": generation}


def example_bodies() -> list[tuple[str, dict[str, Any]]]:
    """Every DatabaseMigration in examples/ as (file name, body with server-set metadata)."""
    found = []
    for path in sorted(EXAMPLES.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "DatabaseMigration":
                doc["metadata"] = {**doc["metadata"], **metadata(doc["metadata"]["name"])}
                found.append((path.name, doc))
    return found


def minimal(**spec: Any) -> dict[str, Any]:
    """The smallest valid body (no defaults applied), with ``spec`` fields added or replaced."""
    body: dict[str, Any] = {
        "image": "ghcr.io/acme/shop:1.4.2",
        "database": {"urlSecretRef": {"name": "shop-db", "key": "url"}},
    }
    body.update(spec)
    body = {k: v for k, v in body.items() if v is not None}  # None removes a field
    return {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": metadata(),
        "spec": body,
    }


def command_runner() -> dict[str, Any]:
    return minimal(
        image=None,
        runner={
            "type": "command",
            "image": "ghcr.io/acme/shop-tools:2.0.0",
            "command": ["alembic"],
            "args": ["-c", "/app/alembic.ini", "upgrade", "head"],
        },
        database={
            "urlSecretRef": {"name": "shop-db", "key": "url"},
            "lock": "none",
            "sessionSettings": {"lockTimeout": "2s", "statementTimeout": "15min"},
        },
    )


def all_knobs() -> dict[str, Any]:
    """Every spec field set (embedded runner)."""
    return minimal(
        revision="0007_orders@head",
        allowDowngrade=True,
        database={
            "urlSecretRef": {"name": "shop-db", "key": "url"},
            "lock": "advisory",
            "lockTimeoutSeconds": 120,
            "sessionSettings": {"lockTimeout": "5s", "statementTimeout": "15min"},
        },
        alembic={
            "config": "db/alembic.ini",
            "workingDir": "/app",
            "section": "orders",
            "xArgs": {"tenant": "acme", "dry": "false"},
            "python": "/app/.venv/bin/python",
        },
        runner={"type": "embedded"},
        approval={"required": False},
        dryRun=False,
        gate={"deployments": ["shop-web"], "mode": "pause"},
        env=[
            {"name": "LOG_LEVEL", "value": "INFO"},
            {"name": "SENTRY_DSN", "valueFrom": {"secretKeyRef": {"name": "sentry", "key": "dsn"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        envFrom=[{"configMapRef": {"name": "shop-settings"}, "prefix": "SHOP_"}],
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        serviceAccountName="shop-migrations",
        imagePullSecrets=[{"name": "ghcr-pull"}],
        nodeSelector={"kubernetes.io/os": "linux"},
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
        ],
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "pool", "operator": "In", "values": ["batch"]}
                            ]
                        }
                    ]
                }
            }
        },
        podLabels={"team": "payments"},
        podAnnotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        activeDeadlineSeconds=1800,
        backoffLimit=4,
        ttlSecondsAfterFinished=86400,
        suspend=False,
    )
