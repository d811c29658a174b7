"""A Job shaped like the operator's runs the embedded runner against PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cluster.client import Client
from tests.cluster.kubelet import TestKubelet
from tests.cluster.processes import ImageSpec
from tests.databases import Database
from tests.kubelet.conftest import APP_IMAGE, OPERATOR_IMAGE
from tests.kubelet.helpers import (
    condition,
    finished_job,
    jobs,
    main_state,
    pods,
    pods_of,
    runner_policy,
    secrets,
)
from tests.runner.harness import HEAD, copy_project, revision_source

BROKEN_IMAGE = "registry.example.com/shop/app:broken"


def migration_job(name: str, image: str) -> dict[str, Any]:
    """The Job the operator builds for `runner: embedded` (restricted pod security included)."""
    security = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = [
        {"name": "runner", "mountPath": "/alembic-operator"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 300,
            "podFailurePolicy": runner_policy(),
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "volumes": [
                        {"name": "runner", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                    "initContainers": [
                        {
                            "name": "install-runner",
                            "image": OPERATOR_IMAGE,
                            "command": [
                                "alembic-operator",
                                "write-runner",
                                "/alembic-operator/runner.py",
                            ],
                            "volumeMounts": mounts,
                            "securityContext": security,
                        }
                    ],
                    "containers": [
                        {
                            "name": "migrate",
                            "image": image,
                            "workingDir": "/app",
                            "command": ["python", "/alembic-operator/runner.py"],
                            "env": [
                                {
                                    "name": "DATABASE_URL",
                                    "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
                                },
                                {
                                    "name": "ALEMBIC_OPERATOR_TERMINATION_MESSAGE_PATH",
                                    "value": "/dev/termination-log",
                                },
                                {"name": "ALEMBIC_OPERATOR_LOCK_TIMEOUT_SECONDS", "value": "30"},
                            ],
                            "volumeMounts": mounts,
                            "securityContext": security,
                        }
                    ],
                }
            },
        },
    }


async def _secret(client: Client, namespace: str, url: str) -> None:
    body = {"metadata": {"name": "db"}, "stringData": {"url": url}}
    await client.ok("POST", secrets(namespace), body)


async def test_embedded_runner_job_migrates_postgresql_to_head(
    kubelet: TestKubelet, kube: Client, namespace: str, pg_database: Database
) -> None:
    client = kube
    await _secret(client, namespace, pg_database.url)
    await client.ok("POST", jobs(namespace), migration_job("migrate-shop", APP_IMAGE))
    job = await finished_job(client, namespace, "migrate-shop", within=120)
    assert condition(job, "Complete"), job["status"]
    [pod] = await pods_of(client, namespace, "migrate-shop")
    result = json.loads(main_state(pod)["terminated"]["message"])
    assert (result["outcome"], result["reason"], result["exitCode"]) == ("Succeeded", "Applied", 0)
    assert result["toRevision"] == HEAD
    assert pg_database.versions() == {HEAD}
    init, main = kubelet.runs
    assert init.container == "install-runner" and main.container == "migrate"
    assert main.cwd.endswith("/migrations")  # workingDir /app is the image's folder
    assert main.env["TMPDIR"] != "/tmp" and "/alembic-operator" not in " ".join(main.argv)
    code, log = await client.get(f"{pods(namespace)}/{pod['metadata']['name']}/log")
    assert code == 200 and "Applied" in log


async def test_embedded_runner_permanent_failure_fails_the_job_once(
    kubelet: TestKubelet, kube: Client, namespace: str, pg_database: Database, tmp_path: Path
) -> None:
    client = kube
    project = copy_project(
        tmp_path,
        extra={
            "0010_broken.py": revision_source(
                "0010_broken", HEAD, "    op.execute('SELECT * FROM no_such_table')"
            )
        },
    )
    kubelet.images[BROKEN_IMAGE] = ImageSpec(root=project)
    await _secret(client, namespace, pg_database.url)
    await client.ok("POST", jobs(namespace), migration_job("migrate-broken", BROKEN_IMAGE))
    job = await finished_job(client, namespace, "migrate-broken", within=120)
    failed = condition(job, "Failed")
    assert failed and failed["reason"] == "PodFailurePolicy", job["status"]
    [pod] = await pods_of(client, namespace, "migrate-broken")
    terminated = main_state(pod)["terminated"]
    assert terminated["exitCode"] == 10
    result = json.loads(terminated["message"])
    assert (result["reason"], result["failedRevision"]) == ("MigrationFailed", "0010_broken")
    assert pg_database.versions() == {HEAD}
    code, log = await client.get(f"{pods(namespace)}/{pod['metadata']['name']}/log")
    assert code == 200 and "no_such_table" in log
