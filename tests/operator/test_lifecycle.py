"""The migration lifecycle end to end: the real operator and control plane, real PostgreSQL."""

from __future__ import annotations

from tests.databases import Database
from tests.operator.harness import Cluster, condition, migration, settled_event_reasons
from tests.runner.harness import ALL_REVISIONS, HEAD


async def test_success_from_base_to_head(cluster: Cluster, pg_database: Database) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    created = await cluster.create(migration("shop"))
    status = await cluster.wait_phase("shop", "Succeeded")
    assert status["currentRevision"] == HEAD
    assert len(status["appliedRevisions"]) == ALL_REVISIONS
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "Ready")["reason"] == "Applied"
    assert condition(status, "Stalled")["status"] == "False"
    assert status["lastSucceeded"]["revision"] == HEAD
    assert status["durationSeconds"] > 0
    assert pg_database.versions() == {HEAD}
    jobs = await cluster.jobs("shop")
    assert len(jobs) == 1
    assert await settled_event_reasons(cluster, "shop", count=2) == [
        "MigrationStarted",
        "MigrationSucceeded",
    ]
