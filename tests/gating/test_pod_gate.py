"""The gate holds by construction: upgrades and first installs, either apply order, on the real
control plane (real Deployment/ReplicaSet controllers, the operator's webhook registered on the
real apiserver, real PostgreSQL).

The issue's counts, all at once: 20 upgrades with the Deployment applied first, 20 with the
migration first, 10 first installs in each order (the Deployment-first ones declare their
migration with the pod-template label), good and broken versions mixed. Five Deployments share
a migration (an application's web, worker, ... as one release would ship them), so the 60
rounds need 12 migrations, not 60: each Deployment's request is still its own admission
decision, and the Deployment controller's race is per Deployment. The gate is decided inside
each API request (the Deployment's pause, the pod's scheduling gate), so a round cannot pass by
luck of timing; running them together only makes the operator slower to react, which is the
condition the old, reacting gate lost to. A watcher started before the changes records every
pod's first bind/Running; etcd revisions order it against each migration's success exactly.
The database reaches head with the first migration, so each round's migration is quick (a
broken one names a revision that does not exist and fails at once). Pods "serve" with
``sleep``: 150 of them cost little.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Group:
    """One migration and the Deployments it gates, applied in one order, good or broken."""

    migration: str
    kind: str  # "upgrade" (from a migrated, rolled-out 1.0) or "install" (first install)
    first: str  # "deployment" or "migration": which is applied first
    good: bool

    @property
    def deployments(self) -> list[str]:
        return [f"{self.migration}-{i}" for i in range(PER_MIGRATION)]

    @property
    def tag(self) -> str:
        return "2.0" if self.good else BROKEN


PER_MIGRATION = 5  # Deployments gated by one migration (an application's web, worker, ...)
GROUPS = [
    *(Group(f"ud{i}", "upgrade", "deployment", i % 2 == 0) for i in range(4)),
    *(Group(f"um{i}", "upgrade", "migration", i % 2 == 1) for i in range(4)),
    *(Group(f"id{i}", "install", "deployment", i % 2 == 0) for i in range(2)),
    *(Group(f"im{i}", "install", "migration", i % 2 == 1) for i in range(2)),
]


async def apply_round(cluster: Cluster, group: Group) -> None:
    """The group's change, in its order: the Deployments' requests at once, the migration's
    before or after them (an install from the Deployment's side declares it by label)."""
    names, tag = group.deployments, group.tag

    async def deployments() -> None:
        if group.kind == "upgrade":
            await asyncio.gather(*(set_image(cluster, n, tag) for n in names))
        elif group.first == "deployment":
            bodies = [labelled(n, tag, group.migration) for n in names]
            await asyncio.gather(
                *(cluster.client.ok("POST", cluster.DEPLOYMENTS, b) for b in bodies)
            )
        else:
            bodies = [deployment(n, tag=tag) for n in names]
            await asyncio.gather(
                *(cluster.client.ok("POST", cluster.DEPLOYMENTS, b) for b in bodies)
            )

    async def migration_change() -> None:
        if group.kind == "upgrade":
            await cluster.patch(group.migration, {"spec": target(tag)})
        elif group.first == "deployment":
            await cluster.create(gated_migration(group.migration, tag))
        else:
            await cluster.create(gated_migration(group.migration, tag, deployments=tuple(names)))

    if group.first == "deployment":
        await deployments()
        await migration_change()
    else:
        await migration_change()
        await deployments()


async def test_upgrades_and_first_installs_never_start_a_version_before_its_migration(
    cluster: Cluster, webhook: Webhook, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    for tag in ("1.0", "2.0", BROKEN):
        register_image(cluster, tag)
    upgrades = [g for g in GROUPS if g.kind == "upgrade"]
    rollouts = [(g, d) for g in GROUPS for d in g.deployments]
    async with registered(cluster, webhook, pod_gated):
        # Upgrades start from a migrated, rolled-out 1.0 (the first of these migrations takes
        # the database to head; the others find it there, and so do the rounds below).
        for group in upgrades:
            await cluster.create(
                gated_migration(group.migration, "1.0", deployments=tuple(group.deployments))
            )
        await asyncio.gather(
            *(
                cluster.client.ok("POST", cluster.DEPLOYMENTS, deployment(name))
                for group in upgrades
                for name in group.deployments
            )
        )
        for group in upgrades:
            await phase_is(cluster, group.migration, "Succeeded")
        for group in upgrades:
            for name in group.deployments:
                await wait_rolled_out(cluster, name, "1.0")
        old = {
            name: await serving(cluster, name, "1.0")
            for group in upgrades
            for name in group.deployments
        }

        watcher = Watcher(cluster)
        await watcher.start()
        try:
            await asyncio.gather(*(apply_round(cluster, group) for group in GROUPS))
            for group in GROUPS:
                await phase_is(cluster, group.migration, "Succeeded" if group.good else "Failed")
            for group, name in rollouts:
                if group.good:
                    await wait_rolled_out(cluster, name, "2.0")
            # Failed rounds: the old pods (same UIDs) keep serving, nothing new starts.
            failed = [(g, n) for g, n in rollouts if not g.good]

            async def snapshot() -> dict[str, Any]:
                return {
                    n: (await serving(cluster, n, "1.0"), await serving(cluster, n, BROKEN))
                    for _, n in failed
                }

            after = await stays(cluster, snapshot, what="the failed rounds' pods")
        finally:
            await watcher.stop()

    for group, name in rollouts:
        early = watcher.early(name, image(group.tag), group.migration)
        assert early == [], (group, name, early)
    for group in GROUPS:
        await assert_job_recorded_once(cluster, group.migration)
    for group, name in failed:
        old_pods, new_pods = after[name]
        if group.kind == "upgrade":
            assert old_pods == old[name] and set(old_pods.values()) == {"Running"}, name
            assert (await get_deployment(cluster, name))["spec"]["paused"] is True, name
        assert all(phase == "Pending" for phase in new_pods.values()), (name, new_pods)
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
