"""Two replicas with leader election: the leader SIGKILLed mid-migration, the standby takes
over within 15 s; exactly one Job, the outcome counted once, the Deployment released once."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.client import Client
from tests.cluster.fixtures import APP_IMAGE
from tests.cluster.kubelet import TestKubelet
from tests.databases import Database
from tests.ha.harness import Replicas
from tests.ha.helpers import dbm_path, deployment, deployments_path, held_by, held_in_request
from tests.operator.harness import job_name_for, migration, wait_for

TAKEOVER_SECONDS = 15


def succeeded_total(text: str, namespace: str) -> float:
    """``alembic_operator_migrations_total{result="succeeded"}`` of migration shop (0 if none)."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "alembic_operator_migrations_total"
        and s.labels.get("namespace") == namespace
        and s.labels.get("migration") == "shop"
        and s.labels.get("result") == "succeeded"
    )


@pytest.mark.postgresql
async def test_leader_killed_mid_migration_standby_takes_over(
    replicas: Replicas,
    kube: Client,
    namespace: str,
    kubelet: TestKubelet,
    pg_database: Database,
) -> None:
    a = await replicas.start("replica-a")
    b = await replicas.start("replica-b")
    leader_id = await wait_for(replicas.holder, within=30, what="a leader")
    leader = replicas.by_identity(leader_id)
    standby = b if leader is a else a
    await kube.ok(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "shop-db"}, "stringData": {"url": pg_database.url}},
    )
    created = await kube.ok(
        "POST", dbm_path(namespace), migration("shop", gate={"deployments": ["web"]})
    )
    job = job_name_for(created)
    kubelet.hold(job, at="start")  # mid-migration: the Job's pod is bound, its runner not started
    jobs_path = f"/apis/batch/v1/namespaces/{namespace}/jobs"

    async def jobs() -> list[str]:
        listed = await kube.ok(
            "GET", jobs_path, params={"labelSelector": "alembic-operator.dev/migration=shop"}
        )
        return [j["metadata"]["name"] for j in listed["items"]]

    assert await wait_for(jobs, within=30, what="the leader to create the Job") == [job]
    web = deployment("web", replicas=1)
    web["spec"]["template"]["spec"]["containers"][0]["image"] = APP_IMAGE
    answer = await kube.ok("POST", deployments_path(namespace), web)
    assert held_in_request(answer), answer  # held by whichever replica the webhook reached

    killed = time.monotonic()
    await replicas.kill(leader)

    async def taken_over() -> bool:
        return await replicas.holder() == standby.identity

    await wait_for(taken_over, within=TAKEOVER_SECONDS + 5, what="the standby to take the Lease")
    takeover = time.monotonic() - killed
    assert takeover < TAKEOVER_SECONDS, f"took over after {takeover:.1f}s"

    kubelet.release(job, at="start")

    async def succeeded() -> bool:
        status = (await kube.ok("GET", f"{dbm_path(namespace)}/shop")).get("status") or {}
        return status.get("phase") == "Succeeded"

    await wait_for(succeeded, within=90, what="the migration to succeed under the new leader")
    assert await jobs() == [job]  # adopted, never duplicated

    async def released() -> dict[str, object] | None:
        body = await kube.ok("GET", f"{deployments_path(namespace)}/web")
        spec = body.get("spec") or {}
        return body if not spec.get("paused") and held_by(body) is None else None

    await wait_for(released, within=30, what="the Deployment to be released")
    # The killed replica comes back (as a standby): only the leader has counted the outcome.
    restarted = await replicas.start(f"{leader.identity}-restarted")
    assert await replicas.holder() == standby.identity
    assert succeeded_total(await asyncio.to_thread(standby.metrics), namespace) == 1
    assert succeeded_total(await asyncio.to_thread(restarted.metrics), namespace) == 0
    events = await kube.ok(
        "GET",
        f"/api/v1/namespaces/{namespace}/events",
        params={"fieldSelector": "involvedObject.name=web,involvedObject.kind=Deployment"},
    )
    reasons = [e["reason"] for e in events["items"]]
    assert reasons.count("RolloutReleased") == 1, reasons
    print(f"standby took over {takeover:.1f}s after the leader's SIGKILL")
