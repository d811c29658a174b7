"""Names and incarnations: long names, same-prefix names, and a namesake recreated."""

from __future__ import annotations

from tests.databases import Database
from tests.operator.harness import Cluster, migration, wait_for
from tests.runner.harness import HEAD

PREFIX = "shop-schema-migration-for-the-orders-service-in-production-eu-"  # 62 characters


async def test_seventy_character_names_with_a_shared_prefix(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    names = [f"{PREFIX}alpha-01", f"{PREFIX}alpha-02"]
    assert all(len(n) == 70 for n in names)
    for name in names:
        await cluster.create(migration(name))
    statuses = [await cluster.wait_phase(name, "Succeeded") for name in names]
    job_names = [s["job"]["name"] for s in statuses]
    assert len(set(job_names)) == 2
    assert all(len(j) <= 63 for j in job_names)
    assert sorted(
        s["condition_reason"]
        for s in [
            {"condition_reason": c["reason"]}
            for st in statuses
            for c in st["conditions"]
            if c["type"] == "Ready"
        ]
    ) == ["Applied", "UpToDate"]  # the second one found the database at head
    assert pg_database.versions() == {HEAD}


async def test_recreated_namesake_does_not_adopt_the_old_job(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    first = await cluster.create(migration("shop"))
    old_job = (await cluster.wait_phase("shop", "Succeeded"))["job"]["name"]
    # Orphan the Job so it outlives its owner, then recreate the migration under the same name.
    await cluster.client.ok("DELETE", f"{cluster.DBM}/shop", params={"propagationPolicy": "Orphan"})

    async def gone() -> bool:
        return (await cluster.client.get(f"{cluster.DBM}/shop"))[0] == 404

    await wait_for(gone, what="the first incarnation to be deleted")
    second = await cluster.create(migration("shop"))
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    status = await cluster.wait_phase("shop", "Succeeded")
    assert status["job"]["name"] != old_job
    jobs = {j["metadata"]["name"]: j for j in await cluster.jobs("shop")}
    assert set(jobs) == {old_job, status["job"]["name"]}
    new_owner = jobs[status["job"]["name"]]["metadata"]["ownerReferences"][0]["uid"]
    assert new_owner == second["metadata"]["uid"]
    assert status["attempts"] == 1
