"""Failures end to end: a broken revision, a lock held elsewhere, a Job deleted by a user.

The real operator against the emulated cluster; the runner runs against the real PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.databases import Database
from tests.operator.harness import (
    Cluster,
    add_image,
    broken_revision,
    condition,
    delete_job,
    job_name_for,
    job_names,
    migration,
    migration_pods,
    reasons_in_order,
    stays,
    wait_for,
)
from tests.runner.harness import HEAD, copy_project
from tests.runner.test_locking import LockHolder

BROKEN_IMAGE = "registry.example.com/shop/app:broken"
BROKEN_REVISION = "0010_broken"
MISSING_TABLE = "no_such_table_0010"


async def _settled(cluster: Cluster, name: str) -> tuple[Any, ...]:
    status = await cluster.status(name)
    return (
        await job_names(cluster, name),
        len(await migration_pods(cluster, name)),
        status.get("phase"),
        status.get("attempts"),
        status.get("message"),
        len(await cluster.events(name)),
    )


async def test_broken_revision_fails_permanently(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    project = copy_project(
        tmp_path, extra=broken_revision(BROKEN_REVISION, HEAD, f"SELECT * FROM {MISSING_TABLE}")
    )
    add_image(cluster, BROKEN_IMAGE, project)
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", image=BROKEN_IMAGE, backoffLimit=3))

    status = await cluster.wait_phase("shop", "Failed")
    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Ready")["reason"] == "MigrationFailed"
    stalled = condition(status, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "MigrationFailed")
    assert condition(status, "Reconciling")["status"] == "False"
    assert BROKEN_REVISION in status["message"]
    assert MISSING_TABLE in status["message"]
    tail = status["logTail"]
    assert tail
    assert len(tail.encode()) <= 4096
    assert MISSING_TABLE in tail
    assert status["attempts"] == 1
    assert status["currentRevision"] == HEAD
    # The database is left at the last revision that succeeded (one transaction per revision).
    assert pg_database.versions() == {HEAD}
    assert "products" in pg_database.tables()

    # podFailurePolicy FailJob: one pod although backoffLimit allows retries, and no new Job.
    # The operator records the outcome from the pod before the Job controller marks the Job.
    async def job_failed() -> dict[str, Any] | None:
        jobs = await cluster.jobs("shop")
        assert len(jobs) == 1
        conditions = jobs[0].get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "Failed"), None)

    failed = await wait_for(job_failed, what="the Job controller to mark the Job Failed")
    assert failed["reason"] == "PodFailurePolicy"
    assert len(await migration_pods(cluster, "shop")) == 1
    assert await reasons_in_order(cluster, "shop") == ["MigrationStarted", "MigrationFailed"]
    failed_event = next(e for e in await cluster.events("shop") if e["reason"] == "MigrationFailed")
    assert failed_event["type"] == "Warning"
    assert "MigrationFailed" in failed_event["message"]

    jobs_then, pods_then, *_ = await stays(
        cluster, lambda: _settled(cluster, "shop"), what="the failed migration"
    )
    assert (len(jobs_then), pods_then) == (1, 1)


async def _wait_for_lock_waiter(holder: LockHolder) -> None:
    await wait_for(
        lambda: asyncio.to_thread(holder.someone_waits),
        what="the runner to wait for the migration lock",
    )


async def _first_pod_failed_with_lock_timeout(
    cluster: Cluster, holder: LockHolder, job: str
) -> dict[str, Any]:
    """Sequence a retry: pod 1 times out on the lock; pod 2 is held Pending before it starts."""
    await _wait_for_lock_waiter(holder)  # pod 1 is past the kubelet's start gate
    cluster.kubelet.hold(job, at="start")  # so only its replacement is held

    async def retrying() -> dict[str, Any] | None:
        status = await cluster.status("shop")
        message = status.get("message") or ""
        return status if "LockTimeout" in message and "retries" in message else None

    status: dict[str, Any] = await wait_for(retrying, what="the retry to be reported")
    assert status["phase"] == "Running"
    assert status["attempts"] == 1
    assert condition(status, "Reconciling")["status"] == "True"
    assert f"pod 1 of Job {job}" in status["message"]
    await wait_for(
        lambda: _count_pods(cluster, "shop", 2), what="the Job controller to start pod 2"
    )

    async def retry_reported() -> bool:  # the Event follows the status write
        return "MigrationRetrying" in await reasons_in_order(cluster, "shop")

    await wait_for(retry_reported, what="the MigrationRetrying Event")
    return status


async def _retrying_on_the_lock(cluster: Cluster, pg_database: Database, holder: LockHolder) -> str:
    """A migration (backoffLimit 1, 1 s lock wait) whose first pod failed on the held lock."""
    await cluster.create_secret("shop-db", pg_database.url)
    created = await cluster.create(
        migration(
            "shop",
            backoffLimit=1,
            database={"urlSecretRef": {"name": "shop-db", "key": "url"}, "lockTimeoutSeconds": 1},
        )
    )
    job = job_name_for(created)
    await _first_pod_failed_with_lock_timeout(cluster, holder, job)
    return job


async def _count_pods(cluster: Cluster, name: str, count: int) -> bool:
    return len(await migration_pods(cluster, name)) == count


async def test_lock_timeout_is_retried_up_to_the_backoff_limit(
    cluster: Cluster, pg_database: Database
) -> None:
    holder = LockHolder(pg_database)
    try:
        job = await _retrying_on_the_lock(cluster, pg_database, holder)
        cluster.kubelet.release(job, at="start")  # pod 2 runs into the same held lock
        status = await cluster.wait_phase("shop", "Failed")
    finally:
        holder.release()
    assert condition(status, "Ready")["reason"] == "LockTimeout"
    assert condition(status, "Stalled")["status"] == "True"
    assert "another migration holds the lock" in status["message"]
    assert status["attempts"] == 1
    assert await job_names(cluster, "shop") == [job]
    assert len(await migration_pods(cluster, "shop")) == 2
    failed = next(c for c in (await cluster.jobs("shop"))[0]["status"]["conditions"]
                  if c["type"] == "Failed")  # fmt: skip
    assert failed["reason"] == "BackoffLimitExceeded"
    reasons = await reasons_in_order(cluster, "shop")
    assert reasons[0] == "MigrationStarted"
    assert reasons[-1] == "MigrationFailed"
    # backoffLimit 1: one retry announced (the second pod's end is the failure, not a retry).
    assert reasons.count("MigrationRetrying") == 1
    assert reasons.count("MigrationFailed") == 1
    assert pg_database.versions() == set()  # untouched
    await stays(cluster, lambda: _settled(cluster, "shop"), what="the failed migration")


async def test_lock_released_between_pods_lets_the_retry_succeed(
    cluster: Cluster, pg_database: Database
) -> None:
    holder = LockHolder(pg_database)
    try:
        job = await _retrying_on_the_lock(cluster, pg_database, holder)
        assert pg_database.versions() == set()
    finally:
        holder.release()
    cluster.kubelet.release(job, at="start")
    status = await cluster.wait_phase("shop", "Succeeded")
    assert status["currentRevision"] == HEAD
    assert condition(status, "Ready")["reason"] == "Applied"
    assert status["attempts"] == 1  # the same Job retried its pod; the operator made no new Job
    assert await job_names(cluster, "shop") == [job]
    assert len(await migration_pods(cluster, "shop")) == 2
    assert pg_database.versions() == {HEAD}
    reasons = await reasons_in_order(cluster, "shop")
    assert reasons[0] == "MigrationStarted"
    assert reasons[-1] == "MigrationSucceeded"
    assert "MigrationRetrying" in reasons
    assert "MigrationFailed" not in reasons


async def test_user_deleting_the_running_job_is_not_rerun(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    body = migration("shop")
    created = await cluster.create(body)
    job = job_name_for(created)
    cluster.kubelet.hold(job, at="start")
    # Kept running (its pod Pending) until the user deletes it.
    await wait_for(lambda: _count_pods(cluster, "shop", 1), what="the Job's pod")
    status = await cluster.wait_phase("shop", "Running")
    assert status["job"]["name"] == job

    await delete_job(cluster, job, propagation="Background")
    status = await cluster.wait_phase("shop", "Failed")
    cluster.kubelet.release(job, at="start")
    assert condition(status, "Ready")["reason"] == "JobDeleted"
    assert condition(status, "Stalled")["status"] == "True"
    assert job in status["message"]
    assert "alembic-operator.dev/retry" in status["message"]
    reasons = await reasons_in_order(cluster, "shop")
    assert reasons == ["MigrationStarted", "JobDeleted"]

    async def gone() -> bool:
        return not await cluster.jobs("shop") and not await migration_pods(cluster, "shop")

    await wait_for(gone, what="the Job and its pod to be gone")
    await stays(cluster, lambda: _settled(cluster, "shop"), what="the migration after the deletion")
    assert pg_database.versions() == set()  # the held pod never ran
