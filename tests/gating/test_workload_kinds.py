"""The pod gate works for any workload kind: a StatefulSet and a CronJob's Job, declared only
with the pod-template label, applied before their migration exists (real controllers, the
operator's webhook on the real apiserver, real PostgreSQL).

The StatefulSet and the CronJob name a migration that does not exist yet: their pods are created
with the scheduling gate and stay unbound. The migration is then created and its Job held
Running: still nothing binds. Only after it has Succeeded does the operator remove the gates;
then the pods run. A watcher started before anything was applied proves no pod was bound or
Running before the migration's success (etcd revisions order the two streams exactly).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.cluster.fixtures import kubectl
from tests.databases import Database
from tests.gating.admission import Webhook, pod_gated, registered, webhook
from tests.gating.helpers import image, register_image
from tests.gating.podwatch import Watcher
from tests.operator.harness import Cluster, job_name_for, migration, stays, wait_for

__all__ = ["webhook"]
GATE_LABEL = "alembic-operator.dev/migration"
APP_LABEL = "app.kubernetes.io/name"


def pod_template(app: str, tag: str, migration_name: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {APP_LABEL: app, GATE_LABEL: migration_name}},
        "spec": {
            "containers": [{"name": "app", "image": image(tag)}],
            "terminationGracePeriodSeconds": 1,
        },
    }


def stateful_set(name: str, tag: str, migration_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": {APP_LABEL: name}},
            "template": pod_template(name, tag, migration_name),
        },
    }


def cron_job(name: str, tag: str, migration_name: str) -> dict[str, Any]:
    template = pod_template(name, tag, migration_name)
    template["spec"]["restartPolicy"] = "Never"
    template["spec"]["containers"][0]["command"] = ["python", "-c", "print('report done')"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 0 1 1 *",  # never during a test: its Job is created from it by hand
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": template}},
        },
    }


async def app_pods(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    listed = await cluster.client.ok(
        "GET", cluster.PODS, params={"labelSelector": f"{APP_LABEL}={app}"}
    )
    return list(listed["items"])


def is_gated(pod: dict[str, Any]) -> bool:
    gates = [g["name"] for g in pod["spec"].get("schedulingGates") or []]
    return GATE_LABEL in gates and not pod["spec"].get("nodeName")


async def test_a_stateful_set_and_a_cron_job_wait_for_a_migration_declared_by_label(
    cluster: Cluster, webhook: Webhook, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "2.0")
    watcher = Watcher(cluster)
    await watcher.start()
    try:
        async with registered(cluster, webhook, pod_gated):
            # The workloads first: their migration "shop" does not exist yet.
            await cluster.client.ok(
                "POST",
                f"/apis/apps/v1/namespaces/{cluster.ns}/statefulsets",
                stateful_set("db-web", "2.0", "shop"),
            )
            await cluster.client.ok(
                "POST",
                f"/apis/batch/v1/namespaces/{cluster.ns}/cronjobs",
                cron_job("report", "2.0", "shop"),
            )
            await asyncio.to_thread(
                kubectl,
                cluster.control_plane,
                "-n",
                cluster.ns,
                "create",
                "job",
                "report-now",
                "--from=cronjob/report",
            )

            async def both_gated() -> bool:
                pods = [*await app_pods(cluster, "db-web"), *await app_pods(cluster, "report")]
                return len(pods) == 2 and all(is_gated(p) for p in pods)

            await wait_for(both_gated, what="the StatefulSet's and the Job's pods to be gated")

            # The migration arrives; while its Job is held Running, nothing binds.
            created = await cluster.create(migration("shop", image=image("2.0")))
            held = cluster.kubelet.hold(job_name_for(created), at="start")
            await cluster.wait_phase("shop", "Running")
            await stays(cluster, both_gated, what="the gated pods")

            held.set()
            await cluster.wait_phase("shop", "Succeeded", within=90)

            async def statefulset_running() -> bool:
                pods = await app_pods(cluster, "db-web")
                return bool(pods) and pods[0]["status"].get("phase") == "Running"

            async def report_done() -> bool:
                job = await cluster.client.ok("GET", f"{cluster.JOBS}/report-now")
                return any(
                    c["type"] == "Complete" and c["status"] == "True"
                    for c in job.get("status", {}).get("conditions", [])
                )

            await wait_for(statefulset_running, within=60, what="the StatefulSet's pod to run")
            await wait_for(report_done, within=60, what="the CronJob's Job to complete")
    finally:
        await watcher.stop()

    assert watcher.early("db-web", image("2.0"), "shop") == []
    assert watcher.early("report", image("2.0"), "shop") == []
    assert watcher.started("db-web", image("2.0")), "the StatefulSet's pod never ran"
