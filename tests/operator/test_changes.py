"""Changes after creation: spec changes (also mid-run), suspend, the retry annotation, the TTL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.databases import Database
from tests.operator.harness import (
    APP_IMAGE,
    Cluster,
    add_image,
    broken_revision,
    condition,
    job_name_for,
    job_names,
    migration,
    reasons_in_order,
    stays,
    wait_for,
)
from tests.runner.harness import HEAD, copy_project, run_runner

RETRY = "alembic-operator.dev/retry"
BROKEN_IMAGE = "registry.example.com/shop/app:broken"
SEED = "0004_seed_data"


def _broken_image(cluster: Cluster, tmp_path: Path) -> str:
    project = copy_project(
        tmp_path, extra=broken_revision("0010_broken", HEAD, "SELECT * FROM no_such_table_0010")
    )
    return add_image(cluster, BROKEN_IMAGE, project)


async def _jobs_and_phase(cluster: Cluster, name: str) -> tuple[Any, ...]:
    status = await cluster.status(name)
    return (await job_names(cluster, name), status.get("phase"), status.get("attempts"))


async def _failed_attempt(cluster: Cluster, name: str, attempt: int) -> dict[str, Any]:
    async def failed() -> dict[str, Any] | None:
        status = await cluster.status(name)
        done = status.get("phase") == "Failed" and status.get("attempts") == attempt
        return status if done else None

    return dict(await wait_for(failed, what=f"attempt {attempt} of {name} to fail"))


async def test_spec_change_mid_run_waits_for_the_running_job(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    created = await cluster.create(migration("shop", revision=SEED))
    first = job_name_for(created)
    cluster.kubelet.hold(first, at="start")
    status = await cluster.wait_phase("shop", "Running")
    assert status["job"]["name"] == first

    changed = await cluster.patch("shop", {"spec": {"revision": "head"}})
    assert changed["metadata"]["generation"] == 2
    jobs, phase, attempts = await stays(
        cluster, lambda: _jobs_and_phase(cluster, "shop"), what="the running migration"
    )
    assert (jobs, phase, attempts) == ([first], "Running", 1)

    cluster.kubelet.release(first, at="start")
    status = await wait_for(
        lambda: _succeeded_generation(cluster, "shop", 2), what="generation 2 to succeed"
    )
    second = job_name_for(created, generation=2, attempt=2)
    assert status["job"]["name"] == second
    assert status["attempts"] == 2
    assert status["currentRevision"] == HEAD
    assert status["fromRevision"] == SEED
    assert status["lastSucceeded"]["generation"] == 2
    assert condition(status, "Ready")["observedGeneration"] == 2
    assert await job_names(cluster, "shop") == sorted([first, second])
    assert pg_database.versions() == {HEAD}
    # The first Job's outcome was recorded (once) before the second Job started.
    assert await reasons_in_order(cluster, "shop") == [
        "MigrationStarted",
        "MigrationSucceeded",
        "MigrationStarted",
        "MigrationSucceeded",
    ]
    first_success = next(
        e for e in await cluster.events("shop") if e["reason"] == "MigrationSucceeded"
        and SEED in e["message"] and HEAD not in e["message"]
    )  # fmt: skip
    assert "base -> " + SEED in first_success["message"]


async def _succeeded_generation(
    cluster: Cluster, name: str, generation: int
) -> dict[str, Any] | None:
    status = await cluster.status(name)
    done = status.get("phase") == "Succeeded" and status.get("observedGeneration") == generation
    return status if done else None


async def test_spec_change_after_a_permanent_failure_runs_again(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", image=_broken_image(cluster, tmp_path)))
    await cluster.wait_phase("shop", "Failed")
    await cluster.patch("shop", {"spec": {"image": APP_IMAGE}})  # the fixed image
    status = await wait_for(
        lambda: _succeeded_generation(cluster, "shop", 2), what="the fixed image to succeed"
    )
    assert status["attempts"] == 2
    assert status["lastSucceeded"]["image"] == APP_IMAGE
    assert status.get("logTail") is None
    assert len(await cluster.jobs("shop")) == 2
    assert pg_database.versions() == {HEAD}


async def test_retry_annotation_runs_one_more_attempt_per_value(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    upgraded = await asyncio.to_thread(run_runner, pg_database.url, tmp_path=tmp_path)
    assert upgraded.exit_code == 0, upgraded.stderr
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", revision=SEED))  # a downgrade, not allowed

    status = await _failed_attempt(cluster, "shop", 1)
    assert condition(status, "Ready")["reason"] == "DowngradeRefused"
    assert condition(status, "Stalled")["status"] == "True"
    assert status.get("retryToken") is None
    assert len(await cluster.jobs("shop")) == 1

    await cluster.patch("shop", {"metadata": {"annotations": {RETRY: "1"}}})
    status = await _failed_attempt(cluster, "shop", 2)
    assert condition(status, "Ready")["reason"] == "DowngradeRefused"
    assert status["retryToken"] == "1"
    assert status["observedGeneration"] == 1  # annotations do not change the generation
    assert len(await cluster.jobs("shop")) == 2

    # The same value again (with another change that wakes the operator): no third attempt.
    await cluster.patch(
        "shop", {"metadata": {"annotations": {RETRY: "1", "example.com/note": "touched"}}}
    )
    jobs, phase, attempts = await stays(
        cluster, lambda: _jobs_and_phase(cluster, "shop"), what="the failed migration"
    )
    assert (len(jobs), phase, attempts) == (2, "Failed", 2)
    assert pg_database.versions() == {HEAD}
    assert await reasons_in_order(cluster, "shop") == ["MigrationStarted", "MigrationFailed"] * 2


async def test_suspend_stops_new_jobs_until_resumed(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop", suspend=True))

    async def suspended() -> dict[str, Any] | None:
        status = await cluster.status("shop")
        reasons = [c["reason"] for c in status.get("conditions", []) if c["type"] == "Ready"]
        return status if reasons == ["Suspended"] else None

    status = await wait_for(suspended, what="the migration to report Suspended")
    assert status["phase"] == "Pending"
    jobs, phase, attempts = await stays(
        cluster, lambda: _jobs_and_phase(cluster, "shop"), what="the suspended migration"
    )
    assert (jobs, phase) == ([], "Pending")
    assert not attempts
    assert pg_database.versions() == set()

    await cluster.patch("shop", {"spec": {"suspend": False}})
    status = await cluster.wait_phase("shop", "Succeeded")
    assert status["observedGeneration"] == 2
    assert pg_database.versions() == {HEAD}
    assert len(await cluster.jobs("shop")) == 1
    assert await reasons_in_order(cluster, "shop") == [
        "Suspended",
        "MigrationStarted",
        "MigrationSucceeded",
    ]


async def test_ttl_deletes_the_succeeded_job_and_keeps_the_status(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    created = await cluster.create(migration("shop", ttlSecondsAfterFinished=1))
    job = job_name_for(created)
    await cluster.wait_phase("shop", "Succeeded")
    assert await job_names(cluster, "shop") == [job]

    async def cleaned_up() -> bool:
        return not await cluster.jobs("shop") and "JobCleanedUp" in await reasons_in_order(
            cluster, "shop"
        )

    await wait_for(cleaned_up, within=15, what="the succeeded Job to be deleted after its TTL")
    status = await cluster.status("shop")
    assert status["phase"] == "Succeeded"
    assert status["currentRevision"] == HEAD
    assert condition(status, "Ready")["status"] == "True"
    assert await reasons_in_order(cluster, "shop") == [
        "MigrationStarted",
        "MigrationSucceeded",
        "JobCleanedUp",
    ]
    cleanup = next(e for e in await cluster.events("shop") if e["reason"] == "JobCleanedUp")
    assert job in cleanup["message"]
    # Nothing reruns once the Job is gone.
    jobs, phase, _ = await stays(
        cluster, lambda: _jobs_and_phase(cluster, "shop"), what="the cleaned-up migration"
    )
    assert (jobs, phase) == ([], "Succeeded")


async def test_ttl_keeps_a_failed_job(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    created = await cluster.create(
        migration("shop", image=_broken_image(cluster, tmp_path), ttlSecondsAfterFinished=1)
    )
    await cluster.wait_phase("shop", "Failed")
    jobs, phase, _ = await stays(
        cluster, lambda: _jobs_and_phase(cluster, "shop"), what="the failed migration"
    )
    assert (jobs, phase) == ([job_name_for(created)], "Failed")
    assert "JobCleanedUp" not in await reasons_in_order(cluster, "shop")


async def test_a_retry_annotation_present_before_the_failure_is_not_a_retry(
    cluster: Cluster, pg_database: Database, tmp_path: Path
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    body = migration("shop", image=_broken_image(cluster, tmp_path))
    body["metadata"]["annotations"] = {RETRY: "1"}  # e.g. kept in a GitOps manifest
    await cluster.create(body)
    status = await _failed_attempt(cluster, "shop", 1)
    assert condition(status, "Ready")["reason"] == "MigrationFailed"
    jobs, phase, attempts = await stays(
        cluster, lambda: _jobs_and_phase(cluster, "shop"), what="the failed migration"
    )
    assert (len(jobs), phase, attempts) == (1, "Failed", 1)

    await cluster.patch("shop", {"metadata": {"annotations": {RETRY: "2"}}})
    status = await _failed_attempt(cluster, "shop", 2)
    assert status["retryToken"] == "2"
    assert len(await cluster.jobs("shop")) == 2
