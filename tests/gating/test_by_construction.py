"""The Deployment gate holds by construction, not by how fast the operator's watch is.

The webhook answers from the operator's watch-fed index when it holds; before it admits a new
template it reads the namespace's migrations from the API server (a consistent LIST). So a
``spec.gate`` Deployment applied a moment after its migration -- before the watch delivered the
migration -- or right after an operator replica started -- before its first list -- is paused in
the request itself, on the real apiserver with the real Deployment controller. When that read
fails, the request is refused (as ``failurePolicy: Fail`` would), never admitted unchecked.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from alembic_operator.controller.serving import WEBHOOK_PORT_ENV
from tests.cluster.controlplane import is_listening
from tests.cluster.fixtures import kubectl
from tests.databases import Database
from tests.gating.admission import (
    Webhook,
    create_deployment_as_user,
    pod_gated,
    registered,
    webhook,
)
from tests.gating.helpers import (
    deployment,
    get_deployment,
    held_by,
    image,
    register_image,
    wait_rolled_out,
)
from tests.gating.podwatch import Watcher
from tests.operator.harness import Cluster, job_name_for, migration, stays, wait_for

__all__ = ["webhook"]  # the fixture
ROUNDS = 20


def gating(name: str, deployment_name: str) -> dict[str, Any]:
    return migration(name, image=image("2.0"), gate={"deployments": [deployment_name]})


def one_replica(body: dict[str, Any]) -> dict[str, Any]:
    body["spec"]["replicas"] = 1  # cheap: the point is the admission, not the replica count
    return body


async def test_a_deployment_applied_right_after_its_migration_is_paused_at_admission(
    cluster: Cluster, webhook: Webhook, pg_database: Database
) -> None:
    """20 rounds at once, each: create a migration, then at once (same client, no wait) its
    gated Deployment with a new template -- a first install (CREATE) or an upgrade (UPDATE).

    The migrations' Jobs wait (the kubelet holds their pods) while the rounds run, so no
    migration can succeed before its Deployment request: each must be paused in the request.
    Then four of them (two of each kind) run and succeed, and only then do their new pods come.
    """
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "1.0")
    register_image(cluster, "2.0")
    await cluster.create(migration("base", image=image("1.0")))  # the database at head once
    await cluster.wait_phase("base", "Succeeded", within=90)
    upgrades = [f"up{i}" for i in range(ROUNDS // 2)]
    installs = [f"new{i}" for i in range(ROUNDS - len(upgrades))]
    jobs: dict[str, str] = {}

    async def create_migration(name: str) -> None:
        created = await cluster.create(gating(f"m-{name}", name))
        jobs[name] = job_name_for(created)
        cluster.kubelet.hold(jobs[name], at="start")

    async def install(name: str) -> dict[str, Any]:
        await create_migration(name)
        created, _ = await create_deployment_as_user(
            cluster, one_replica(deployment(name, tag="2.0"))
        )
        return created

    async def upgrade(name: str) -> dict[str, Any]:
        await create_migration(name)
        current = await get_deployment(cluster, name)
        current["spec"]["template"]["spec"]["containers"][0]["image"] = image("2.0")
        return await cluster.client.ok("PUT", f"{cluster.DEPLOYMENTS}/{name}", current)

    async with registered(cluster, webhook, pod_gated):
        for name in upgrades:  # running 1.0, gated by nothing yet
            await cluster.client.ok("POST", cluster.DEPLOYMENTS, one_replica(deployment(name)))
        for name in upgrades:
            await wait_rolled_out(cluster, name, "1.0")
        watcher = Watcher(cluster)
        await watcher.start()
        try:
            stored = await asyncio.gather(
                *(install(n) for n in installs), *(upgrade(n) for n in upgrades)
            )
            admitted = {
                b["metadata"]["name"]: (b["spec"].get("paused"), held_by(b)) for b in stored
            }
            assert admitted == {n: (True, f"m-{n}") for n in [*installs, *upgrades]}
            released = [*installs[:2], *upgrades[:2]]
            for name in released:
                cluster.kubelet.release(jobs[name], at="start")
            for name in released:
                await cluster.wait_phase(f"m-{name}", "Succeeded", within=120)
                await wait_rolled_out(cluster, name, "2.0")
        finally:
            await watcher.stop()
    for name in [*installs, *upgrades]:
        early = watcher.created_before(name, image("2.0"), f"m-{name}")
        assert early == [], (name, early)
    for name in released:
        assert watcher.started(name, image("2.0")), name  # released, it rolled out


async def test_a_deployment_admitted_before_a_new_replica_listed_the_migrations_is_held(
    cluster: Cluster, webhook: Webhook, pg_database: Database
) -> None:
    """The operator restarts; its watch's first LIST of migrations is held back by the proxy,
    so its index is empty while its webhook already answers."""
    await cluster.create_secret("shop-db", pg_database.url)
    register_image(cluster, "1.0")
    created = await cluster.create(
        migration("shop", image=image("1.0"), gate={"deployments": ["web"]})
    )
    running = cluster.kubelet.hold(job_name_for(created), at="start")
    await cluster.wait_phase("shop", "Running")
    async with registered(cluster, webhook, pod_gated):
        await cluster.stop_operator()
        first_list = asyncio.Event()
        held = cluster.proxy.inject_fault(
            verb="list", plural="databasemigrations", user_agent="kopf/", hold=first_list
        )
        recorded = len(cluster.proxy.calls)
        starting = asyncio.create_task(cluster.start_operator())
        try:
            port = int(os.environ[WEBHOOK_PORT_ENV])
            await wait_for(lambda: is_listening(port), what="the restarted webhook server")

            async def listing() -> bool:
                return held.hits > 0

            await wait_for(listing, what="the new replica's first LIST")
            web, warnings = await create_deployment_as_user(cluster, deployment("web"))
            assert (web["spec"].get("paused"), held_by(web)) == (True, "shop"), warnings
            refused = await asyncio.to_thread(
                _resume_refusal, cluster, "deployment/web"
            )  # a resume, too, is checked against the API server, not the empty index
            assert "held by DatabaseMigration" in refused, refused
            kopf_lists = [
                c
                for c in cluster.proxy.calls[recorded:]
                if (c.verb, c.plural) == ("list", "databasemigrations")
                and c.user_agent.startswith("kopf/")
            ]
            assert kopf_lists == []  # its watch had listed nothing yet: the index was empty
        finally:
            first_list.set()
            await starting
        running.set()
        await cluster.wait_phase("shop", "Succeeded")
        await wait_rolled_out(cluster, "web", "1.0")


def _resume_refusal(cluster: Cluster, target: str) -> str:
    try:
        kubectl(cluster.control_plane, "-n", cluster.ns, "rollout", "resume", target)
    except AssertionError as refused:
        return str(refused)
    return "the resume went through"


async def test_when_the_migrations_cannot_be_read_a_new_template_is_refused(
    cluster: Cluster, webhook: Webhook
) -> None:
    register_image(cluster, "1.0")
    async with registered(cluster, webhook, pod_gated):
        cluster.proxy.inject_fault(
            verb="list", plural="databasemigrations", user_agent="alembic-operator/", status=503
        )
        async with cluster.client.session.post(
            cluster.DEPLOYMENTS, json=deployment("web")
        ) as response:
            answer = await response.json()
        assert response.status == 503, answer
        assert "could not read the DatabaseMigrations" in answer["message"], answer
        # Once the API server answers again, the same request goes through.
        created, _ = await create_deployment_as_user(cluster, deployment("web"))
        assert created["spec"].get("paused") is None
        assert await stays(cluster, lambda: _listed(cluster), what="the Deployments") == ["web"]


async def _listed(cluster: Cluster) -> list[str]:
    listed = await cluster.client.ok("GET", cluster.DEPLOYMENTS)
    return [d["metadata"]["name"] for d in listed["items"]]


async def test_a_statefulset_applied_right_after_its_selector_migration_is_gated(
    cluster: Cluster, webhook: Webhook, pg_database: Database
) -> None:
    """A StatefulSet's pods have no Deployment request to be held in: a migration that gates
    them by ``spec.gate.selector`` alone, created a moment before them, must still gate the
    first pod. The webhook reads the namespace's migrations before it admits such a pod.
    Five rounds at once, each: the migration (its Job held), then at once the StatefulSet.

    The StatefulSet controller is slower than the watch here, so the watch is made to miss the
    migrations' creation (the fault proxy drops the ADDED events the operator's watch would
    get): what a slow watch would do, without timing luck."""
    await cluster.create_secret("shop-db", pg_database.url)
    cluster.proxy.inject_fault(verb="watch", plural="databasemigrations", hide_events="ADDED")
    register_image(cluster, "2.0")
    names = [f"db{i}" for i in range(5)]

    async def apply(name: str) -> None:
        selector = {"matchLabels": {"app.kubernetes.io/name": name}}
        created = await cluster.create(
            migration(f"m-{name}", image=image("2.0"), gate={"selector": selector})
        )
        cluster.kubelet.hold(job_name_for(created), at="start")
        await cluster.client.ok("POST", f"/apis/apps/v1/namespaces/{cluster.ns}/statefulsets", {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "serviceName": name,
                "selector": selector,
                "template": {
                    "metadata": {"labels": selector["matchLabels"]},
                    "spec": {"containers": [{"name": "db", "image": image("2.0")}]},
                },
            },
        })  # fmt: skip

    async def first_pods() -> dict[str, dict[str, Any]]:
        listed = await cluster.client.ok("GET", cluster.PODS)
        return {
            p["metadata"]["labels"].get("app.kubernetes.io/name", ""): p
            for p in listed["items"]
            if p["metadata"]["name"] in {f"{n}-0" for n in names}
        }

    async with registered(cluster, webhook, pod_gated):
        await asyncio.gather(*(apply(n) for n in names))

        async def all_created() -> bool:
            return len(await first_pods()) == len(names)

        await wait_for(all_created, within=60, what="every StatefulSet's first pod")
        pods = await first_pods()
    gates = {
        name: (
            [g["name"] for g in pod["spec"].get("schedulingGates") or []],
            pod["spec"].get("nodeName"),
        )
        for name, pod in pods.items()
    }
    assert gates == {n: (["alembic-operator.dev/migration"], None) for n in names}
