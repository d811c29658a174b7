"""The app's env cannot change the embedded runner's settings (issue 15, item 14).

An ``envFrom`` ConfigMap with the runner's prefix ``ALEMBIC_OPERATOR_`` reaches the migrate
container (Kubernetes cannot filter it), so the operator passes the runner's settings as flags
with ``--args-only``; the runner then reads no ``ALEMBIC_OPERATOR_*`` variable.
"""

from __future__ import annotations

from tests.databases import Database
from tests.operator.harness import Cluster, migration, wait_for
from tests.runner.harness import HEAD
from tests.runner.test_locking import LockHolder

HOSTILE = {
    "ALEMBIC_OPERATOR_LOCK_NAME": "someone-elses-lock",
    "ALEMBIC_OPERATOR_LOCK": "none",
    "ALEMBIC_OPERATOR_MODE": "plan",
    "ALEMBIC_OPERATOR_REVISION": "0003_orders",
    "ALEMBIC_OPERATOR_LOCK_TIMEOUT_SECONDS": "1",
    "ALEMBIC_OPERATOR_EXPECT_REVISIONS": "0001_customers",
    "ALEMBIC_OPERATOR_TERMINATION_MESSAGE_PATH": "/tmp/elsewhere",
}


async def test_env_from_with_the_runner_prefix_changes_nothing(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.client.ok(
        "POST", cluster.CONFIGMAPS, {"metadata": {"name": "app-env"}, "data": HOSTILE}
    )
    holder = LockHolder(pg_database)  # the operator's lock name, held by "another migration"
    try:
        body = migration("shop", envFrom=[{"configMapRef": {"name": "app-env"}}])
        body["spec"]["database"]["lockTimeoutSeconds"] = 100
        await cluster.create(body)
        # The runner waits on the operator's lock (not on the env's name, nor without a lock).
        await wait_for(lambda: _async(holder.someone_waits()), within=60, what="the runner to wait")
        assert pg_database.versions() == set()
        runs = [r for r in cluster.kubelet.runs if r.container == "migrate"]
        assert runs and runs[-1].env["ALEMBIC_OPERATOR_LOCK_NAME"] == "someone-elses-lock"
    finally:
        holder.release()
    status = await cluster.wait_phase("shop", "Succeeded", within=60)
    # Applied (not a plan), to the spec's target (not the env's), from base (no expectation).
    assert status["currentRevision"] == HEAD
    assert pg_database.versions() == {HEAD}


async def _async(value: bool) -> bool:
    return value
