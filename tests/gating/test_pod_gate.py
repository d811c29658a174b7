"""The gate holds by construction: upgrades and first installs, either apply order, on the real
control plane (real Deployment/ReplicaSet controllers, the operator's webhook registered on the
real apiserver, real PostgreSQL).

Rounds run concurrently, each with its own migration and Deployment in one namespace (one
operator): 4 upgrades with the Deployment applied first, 4 with the migration first, 3 first
installs in each order; good and broken images alternate. The issue's 20+20+10+10 would not fit
the suite's time budget; fewer rounds prove the same because the gate is decided inside each API
request (the Deployment's pause, the pod's scheduling gate), not by how fast the operator reacts:
a round cannot pass by luck of timing, and running them concurrently only makes the operator
slower to react, which is the condition the old gate lost to. A watcher started before the
changes records every pod's first bind/Running; etcd revisions order it against each
migration's success exactly. The database is migrated to head once first, so each round's
migration is fast (a broken one names a revision that does not exist and fails at once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cluster.fixtures import kubectl
from tests.databases import Database
from tests.gating.admission import Webhook, pod_gated, registered, webhook
from tests.gating.helpers import (
    deployment,
    get_deployment,
    image,
    register_image,
    set_image,
    wait_rolled_out,
)
from tests.gating.podwatch import Watcher
from tests.operator.harness import Cluster, job_name_for, migration, stays

__all__ = ["webhook"]
GATE_LABEL = "alembic-operator.dev/migration"
BROKEN = "2.0-broken"
NO_SUCH_REVISION = "0000deadbeef"


def gated_migration(name: str, tag: str, *, deployments: tuple[str, ...] = ()) -> dict[str, Any]:
    gate: dict[str, Any] = {"gate": {"deployments": list(deployments)}} if deployments else {}
    return migration(name, **target(tag), **gate)


def target(tag: str) -> dict[str, str]:
    """The migration's spec for ``tag``: the broken version asks for a revision that is not
    there, so its migration fails (RevisionNotFound) at once."""
    return {"image": image(tag), **({"revision": NO_SUCH_REVISION} if tag == BROKEN else {})}


def labelled(name: str, tag: str, migration_name: str) -> dict[str, Any]:
    """A Deployment declaring its migration with the pod-template label (no spec.gate)."""
    body = deployment(name, tag=tag)
    body["spec"]["template"]["metadata"]["labels"][GATE_LABEL] = migration_name
    return body


async def pods_of(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    listed = await cluster.client.ok(
        "GET", cluster.PODS, params={"labelSelector": f"app.kubernetes.io/name={app}"}
    )
    return [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]


async def serving(cluster: Cluster, app: str, tag: str) -> dict[str, str]:
    """uid -> phase of the pods of ``app`` running ``app:<tag>``."""
    return {
        p["metadata"]["uid"]: p["status"].get("phase", "")
        for p in await pods_of(cluster, app)
        if p["spec"]["containers"][0]["image"] == image(tag)
    }


async def phase_is(cluster: Cluster, name: str, phase: str) -> None:
    await cluster.wait_phase(name, phase, within=90)


async def assert_job_recorded_once(cluster: Cluster, name: str) -> None:
    """First Job -> MigrationStarted, never JobAdopted; status.job.uid is that Job's uid."""
    status = await cluster.status(name)
    jobs = {j["metadata"]["name"]: j["metadata"]["uid"] for j in await cluster.jobs(name)}
    assert status["job"]["uid"] == jobs[status["job"]["name"]], (name, status["job"], jobs)
    reasons = await cluster.event_reasons(name)
    assert "MigrationStarted" in reasons and "JobAdopted" not in reasons, (name, reasons)


async def test_upgrades_and_first_installs_never_start_a_version_before_its_migration(
    cluster: Cluster, webhook: Webhook, pg_database: Database, tmp_path: Path
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    for tag in ("1.0", "2.0"):
        register_image(cluster, tag)
    register_image(cluster, BROKEN)
    # The database at head once, so every round's migration is quick.
    await cluster.create(migration("base", image=image("1.0")))
    await phase_is(cluster, "base", "Succeeded")

    upgrades = [(f"up{i}", "deployment" if i % 2 else "migration", i % 4 < 2) for i in range(8)]
    installs = [(f"new{i}", "deployment" if i % 2 else "migration", i < 3) for i in range(6)]
    async with registered(cluster, webhook, pod_gated):
        # Upgrades start from a migrated, rolled-out 1.0.
        for name, _, _ in upgrades:
            await cluster.create(gated_migration(name, "1.0", deployments=(name,)))
            await cluster.client.ok("POST", cluster.DEPLOYMENTS, deployment(name))
        for name, _, _ in upgrades:
            await phase_is(cluster, name, "Succeeded")
            await wait_rolled_out(cluster, name, "1.0")
        old = {name: await serving(cluster, name, "1.0") for name, _, _ in upgrades}

        watcher = Watcher(cluster)
        await watcher.start()
        try:
            for name, first, good in upgrades:
                tag = "2.0" if good else BROKEN
                patch = {"spec": target(tag)}
                if first == "deployment":
                    await set_image(cluster, name, tag)
                    await cluster.patch(name, patch)
                else:
                    await cluster.patch(name, patch)
                    await set_image(cluster, name, tag)
            for name, first, good in installs:
                tag = "2.0" if good else BROKEN
                if first == "deployment":  # declared by the pod-template label
                    await cluster.client.ok("POST", cluster.DEPLOYMENTS, labelled(name, tag, name))
                    await cluster.create(gated_migration(name, tag))
                else:
                    await cluster.create(gated_migration(name, tag, deployments=(name,)))
                    await cluster.client.ok("POST", cluster.DEPLOYMENTS, deployment(name, tag=tag))

            for name, _, good in [*upgrades, *installs]:
                await phase_is(cluster, name, "Succeeded" if good else "Failed")
            for name, _, good in [*upgrades, *installs]:
                if good:
                    await wait_rolled_out(cluster, name, "2.0")
            # Failed rounds: the old pods (same UIDs) keep serving, nothing new starts.
            failed = [(n, f) for n, f, good in [*upgrades, *installs] if not good]

            async def snapshot() -> dict[str, Any]:
                return {
                    n: (await serving(cluster, n, "1.0"), await serving(cluster, n, BROKEN))
                    for n, _ in failed
                }

            after = await stays(cluster, snapshot, what="the failed rounds' pods")
        finally:
            await watcher.stop()

    for name, _, good in [*upgrades, *installs]:
        tag = "2.0" if good else BROKEN
        assert watcher.early(name, image(tag), name) == [], (
            name,
            watcher.early(name, image(tag), name),
        )
        await assert_job_recorded_once(cluster, name)
    for name, _, good in upgrades:
        if not good:
            old_pods, new_pods = after[name]
            assert old_pods == old[name] and set(old_pods.values()) == {"Running"}, name
            assert all(phase == "Pending" for phase in new_pods.values()), (name, new_pods)
            body = await get_deployment(cluster, name)
            assert body["spec"]["paused"] is True, name
    for name, _, good in installs:
        if not good:
            assert watcher.started(name, image(BROKEN)) == [], name


async def test_kubectl_rollout_resume_of_a_held_deployment_is_refused(
    cluster: Cluster, webhook: Webhook, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "1.0")
    created = await cluster.create(gated_migration("shop", "1.0", deployments=("web",)))
    running = cluster.kubelet.hold(job_name_for(created), at="start")
    await cluster.wait_phase("shop", "Running")
    async with registered(cluster, webhook):
        await cluster.client.ok("POST", cluster.DEPLOYMENTS, deployment("web"))
        with pytest.raises(AssertionError) as refused:
            kubectl(cluster.control_plane, "-n", cluster.ns, "rollout", "resume", "deployment/web")
        expected = (
            f"held by DatabaseMigration {cluster.ns}/shop until it has Succeeded for image "
            f"{image('1.0')} (now: Running)"
        )
        assert expected in str(refused.value), refused.value
        assert (await get_deployment(cluster, "web"))["spec"]["paused"] is True
        # The operator's own release after success goes through.
        running.set()
        await cluster.wait_phase("shop", "Succeeded")
        await wait_rolled_out(cluster, "web", "1.0")
