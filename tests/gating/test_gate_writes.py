"""Holds and releases against concurrent writes (issue 15, rules 15 and 16), end to end.

The real Deployment controller writes a Deployment's status and an HPA its scale all the time;
neither changes what the gate decided on, so a hold or release must go through without a 409
and a retry. What the gate did decide on -- the held-by annotation another migration may change
at the same moment -- must still be detected. And once the migration's status is written, the
Events it owes are posted even when a release after it conflicts. The fault proxy parks the
operator's PATCH (``until``) while the test changes the Deployment under it, or fails it.
"""

from __future__ import annotations

import asyncio

from tests.cluster.faults import ApiCall, Fault
from tests.databases import Database
from tests.gating.helpers import (
    create_deployment,
    deployment,
    deployment_events,
    get_deployment,
    held_by,
    migration_events,
    wait_free,
    wait_held,
)
from tests.operator.harness import Cluster, job_name_for, migration, reasons_in_order, wait_for


def gated(name: str, *deployments: str) -> dict[str, object]:
    # One revision: the Job is not the point here, and a short one keeps the test cheap.
    return migration(name, revision="0001_customers", gate={"deployments": list(deployments)})


def patches(cluster: Cluster, name: str) -> list[ApiCall]:
    """The operator's PATCH requests on the Deployment ``name``, in order."""
    return [
        c
        for c in cluster.proxy.calls
        if (c.verb, c.plural, c.name, c.subresource) == ("patch", "deployments", name, None)
    ]


async def patch_statuses(cluster: Cluster, name: str, *, count: int) -> list[int]:
    """The answers to the operator's PATCHes of ``name`` once ``count`` were recorded.

    The proxy records a request when its answer arrives, a moment after the apiserver stored
    it: a test that has just seen the write waits for the record too.
    """

    async def recorded() -> list[int] | None:
        statuses = [c.status for c in patches(cluster, name)]
        return statuses if len(statuses) >= count else None

    return list(await wait_for(recorded, what=f"{count} PATCH(es) of {name}"))


def park(cluster: Cluster, name: str) -> tuple[Fault, asyncio.Event]:
    """Hold the operator's next PATCH of Deployment ``name`` at the proxy until the event."""
    go = asyncio.Event()
    fault = cluster.proxy.inject_fault(verb="patch", plural="deployments", name=name, hold=go)
    return fault, go


async def parked(fault: Fault) -> None:
    async def arrived() -> bool:
        return fault.hits >= 1

    await wait_for(arrived, what="the operator's PATCH to reach the proxy")


async def scale(cluster: Cluster, name: str, replicas: int) -> str:
    """Scale through the scale subresource, as an HPA does; the new resourceVersion."""
    scaled = await cluster.client.ok(
        "PATCH",
        f"{cluster.DEPLOYMENTS}/{name}/scale",
        {"spec": {"replicas": replicas}},
        content_type="application/merge-patch+json",
    )
    return str(scaled["metadata"]["resourceVersion"])


async def test_scaling_between_read_and_write_costs_no_retry_and_a_new_holder_is_kept(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await create_deployment(cluster, deployment("web"))
    await create_deployment(cluster, deployment("api"))
    hold, go = park(cluster, "web")
    shop = await cluster.create(gated("shop", "api", "web"))
    running = cluster.kubelet.hold(job_name_for(shop), at="start")

    # The hold of web was decided on a read; an HPA scales web before the PATCH lands.
    await parked(hold)
    before = (await get_deployment(cluster, "web"))["metadata"]["resourceVersion"]
    assert await scale(cluster, "web", 3) != before
    go.set()
    await wait_held(cluster, "web")
    await wait_held(cluster, "api")
    # One PATCH, answered 200: no 409, no second try.
    assert await patch_statuses(cluster, "web", count=1) == [200]

    # The releases: api's meets a second migration taking hold of api meanwhile, web's a scale.
    release_api, go_api = park(cluster, "api")
    release_web, go_web = park(cluster, "web")
    running.set()
    await parked(release_api)
    billing = await cluster.create(gated("billing", "api"))
    cluster.kubelet.hold(job_name_for(billing), at="start")  # billing stays Running: holding

    async def both_hold_api() -> bool:
        return held_by(await get_deployment(cluster, "api")) == "shop,billing"

    await wait_for(both_hold_api, what="billing to add itself to api's holders")
    go_api.set()
    await parked(release_web)
    await scale(cluster, "web", 1)
    go_web.set()

    await cluster.wait_phase("shop", "Succeeded")
    await wait_free(cluster, "web")
    assert await patch_statuses(cluster, "web", count=2) == [200, 200]
    # api's release tested the annotation it had read ("shop"): refused (422), decided again,
    # and billing's hold kept. A write guarded by nothing would have dropped billing.
    assert 422 in [c.status for c in patches(cluster, "api")]
    api = await wait_held(cluster, "api", migration="billing")
    assert api["spec"]["paused"] is True

    async def released_events() -> list[str] | None:
        events = [e["message"] for e in await deployment_events(cluster, "api")]
        released = [m for m in events if m.startswith("released")]
        return released or None

    [released] = await wait_for(released_events, what="api's RolloutReleased Event")
    assert "still held by billing" in released

    async def succeeded() -> bool:  # posted beside the release; may come just after it
        return "MigrationSucceeded" in await reasons_in_order(cluster, "shop")

    await wait_for(succeeded, what="shop's MigrationSucceeded Event")


async def test_a_conflicting_release_still_posts_the_success(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await create_deployment(cluster, deployment("web"))
    shop = await cluster.create(gated("shop", "web"))
    running = cluster.kubelet.hold(job_name_for(shop), at="start")
    await wait_held(cluster, "web")
    conflict = cluster.proxy.inject_fault(
        verb="patch", plural="deployments", name="web", status=409, reason="Conflict"
    )
    running.set()

    await cluster.wait_phase("shop", "Succeeded")
    await wait_free(cluster, "web")
    assert conflict.hits == 1

    async def succeeded_event() -> list[str] | None:
        reasons = [e["reason"] for e in await migration_events(cluster, "shop")]
        return reasons if "MigrationSucceeded" in reasons else None

    await wait_for(succeeded_event, what="the MigrationSucceeded Event")

    # The release that conflicted is announced once, by the retry that released web.
    async def released() -> list[str] | None:
        web = [e["reason"] for e in await deployment_events(cluster, "web")]
        return web if len(web) >= 2 else None

    assert await wait_for(released, what="web's RolloutReleased Event") == [
        "RolloutHeld",
        "RolloutReleased",
    ]
    assert (await reasons_in_order(cluster, "shop")).count("MigrationSucceeded") == 1
