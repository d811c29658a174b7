"""The two runner kinds end to end, and deletion without the operator."""

from __future__ import annotations

from tests.databases import Database
from tests.operator.harness import Cluster, migration, wait_for
from tests.runner.harness import HEAD


async def test_command_runner_runs_the_given_command(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(
        migration("shop", runner={"type": "command", "command": ["alembic", "upgrade", "head"]})
    )
    status = await cluster.wait_phase("shop", "Succeeded")
    assert pg_database.versions() == {HEAD}
    job = (await cluster.jobs("shop"))[0]
    pod = job["spec"]["template"]["spec"]
    assert "initContainers" not in pod  # no embedded runner
    assert pod["containers"][0]["command"] == ["alembic", "upgrade", "head"]
    assert status["job"]["name"] == job["metadata"]["name"]


async def test_embedded_runner_job_shape(cluster: Cluster, pg_database: Database) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop"))
    await cluster.wait_phase("shop", "Succeeded")
    job = (await cluster.jobs("shop"))[0]
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["write-runner"]
    assert pod["containers"][0]["command"][-1] == "/alembic-operator/runner.py"
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    url_env = next(e for e in pod["containers"][0]["env"] if e["name"] == "DATABASE_URL")
    assert url_env == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}},
    }
    assert job["metadata"]["ownerReferences"][0]["kind"] == "DatabaseMigration"


async def test_deleting_a_migration_needs_no_operator(cluster: Cluster) -> None:
    await cluster.create(migration("shop", secret="absent"))
    await cluster.wait_phase("shop", "Pending")
    await cluster.stop_operator()
    body = await cluster.get("shop")
    assert not body["metadata"].get("finalizers")  # nothing can hold the deletion
    await cluster.client.ok("DELETE", f"{cluster.DBM}/shop")

    async def gone() -> bool:
        return (await cluster.client.get(f"{cluster.DBM}/shop"))[0] == 404

    await wait_for(gone, what="the migration to be deleted with the operator down")
