"""Operator restarts and lost responses: the Job is adopted, never duplicated; outcomes once."""

from __future__ import annotations

import pytest

from alembic_operator.core.jobs import job_name
from tests.databases import Database
from tests.operator.harness import Cluster, Reconciles, migration, settled_event_reasons, wait_for
from tests.runner.harness import HEAD


def first_job(created: dict[str, object]) -> str:
    meta = created["metadata"]
    assert isinstance(meta, dict)
    return job_name(meta["name"], uid=meta["uid"], generation=meta["generation"], attempt=1)


async def reconciled(reconciles: Reconciles, name: str, *, times: int) -> None:
    async def enough() -> bool:
        return reconciles.count(name) >= times

    await wait_for(enough, what=f"{times} reconcile(s) of {name}")


async def test_killed_after_creating_the_job_adopts_it(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    # The status write after the Job create fails, as if the operator died in between.
    fault = cluster.proxy.inject_fault(
        verb="patch", plural="databasemigrations", subresource="status", status=500, times=None
    )
    created = await cluster.create(migration("shop"))
    name = first_job(created)
    held = cluster.kubelet.hold(name, at="start")
    await wait_for(lambda: cluster.jobs("shop"), what="the Job to be created")
    await cluster.stop_operator()
    assert (await cluster.status("shop")).get("phase") is None  # nothing recorded
    cluster.proxy.faults.remove(fault)

    await cluster.start_operator()
    status = await cluster.wait_phase("shop", "Running")
    assert status["job"]["name"] == name
    held.set()
    status = await cluster.wait_phase("shop", "Succeeded")
    assert status["currentRevision"] == HEAD
    assert [j["metadata"]["name"] for j in await cluster.jobs("shop")] == [name]
    assert await settled_event_reasons(cluster, "shop", count=2) == [
        "JobAdopted",
        "MigrationSucceeded",
    ]


async def test_job_finishing_while_the_operator_is_down(
    cluster: Cluster, pg_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    created = await cluster.create(migration("shop"))
    name = first_job(created)
    held = cluster.kubelet.hold(name, at="start")
    await cluster.wait_phase("shop", "Running")
    await cluster.stop_operator()

    held.set()

    async def job_complete() -> bool:
        job = await cluster.client.ok("GET", f"{cluster.JOBS}/{name}")
        return any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in job.get("status", {}).get("conditions", [])
        )

    await wait_for(job_complete, what="the Job to complete with the operator down")
    assert (await cluster.status("shop"))["phase"] == "Running"

    await cluster.start_operator()
    status = await cluster.wait_phase("shop", "Succeeded")
    assert status["currentRevision"] == HEAD
    assert len(await cluster.jobs("shop")) == 1
    # Restart once more: nothing is counted or reported again. Reconciles after the restart
    # (the initial listing, then a no-op annotation change) must have run by then.
    await cluster.stop_operator()
    reconciles = Reconciles(monkeypatch)
    await cluster.start_operator()
    await reconciled(reconciles, "shop", times=1)
    after_start = reconciles.count("shop")
    await cluster.patch("shop", {"metadata": {"annotations": {"example.com/poke": "1"}}})
    await reconciled(reconciles, "shop", times=after_start + 1)
    assert (await cluster.status("shop"))["phase"] == "Succeeded"
    assert await settled_event_reasons(cluster, "shop", count=2) == [
        "MigrationStarted",
        "MigrationSucceeded",
    ]
    assert len(await cluster.jobs("shop")) == 1


async def test_lost_create_response_409_is_adoption(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    # The create is stored but its answer is lost; the operator's retry then gets 409.
    cluster.proxy.inject_fault(verb="create", plural="jobs", status=504, after_write=True)
    await cluster.create(migration("shop"))
    status = await cluster.wait_phase("shop", "Succeeded")
    assert status["currentRevision"] == HEAD
    assert len(await cluster.jobs("shop")) == 1
    assert "MigrationSucceeded" in await settled_event_reasons(cluster, "shop", count=2)


async def test_409_on_create_for_a_job_we_own_is_adoption(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    # The create is stored and answered 409 AlreadyExists (a retried request that raced).
    cluster.proxy.inject_fault(
        verb="create", plural="jobs", status=409, reason="AlreadyExists", after_write=True
    )
    await cluster.create(migration("shop"))
    status = await cluster.wait_phase("shop", "Succeeded")
    assert status["currentRevision"] == HEAD
    assert len(await cluster.jobs("shop")) == 1
    assert await settled_event_reasons(cluster, "shop", count=2) == [
        "MigrationStarted",
        "MigrationSucceeded",
    ]
