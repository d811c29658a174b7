"""The Job the operator writes, run by a real container runtime: the test kubelet in container
mode runs the pod with podman from the images scripts/image.sh builds (the operator image's
``write-runner`` init container, then the example app image running the embedded runner against
a throw-away PostgreSQL database over the host network)."""

from __future__ import annotations

import json

import pytest

from alembic_operator.core import jobs
from tests.cluster.podman import APP_IMAGE as LOCAL_APP_IMAGE
from tests.cluster.podman import parse_image_info, podman_sync
from tests.cluster.runtimes import LABEL
from tests.databases import Database
from tests.operator.harness import (
    APP_IMAGE,
    Cluster,
    condition,
    job_name_for,
    migration,
    pods,
    wait_for,
)
from tests.runner.harness import ALL_REVISIONS, HEAD

pytestmark = pytest.mark.podman_kubelet


def containers_of(cluster: Cluster) -> list[str]:
    """The podman containers of this test's kubelet that still exist."""
    instance = str(cluster.kubelet.workdir.resolve())
    listed = podman_sync(
        "ps", "--all", "--filter", f"label={LABEL}={instance}", "--format", "{{.Names}}"
    )
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


async def test_a_migration_succeeds_in_real_containers(
    cluster: Cluster, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    # The example app image carries its Alembic project in /app/migrations (as the example's
    # manifest says; the process-mode kubelet maps any working folder to migrations/).
    created = await cluster.create(migration("shop", alembic={"workingDir": "/app/migrations"}))
    try:
        status = await cluster.wait_phase("shop", "Succeeded", within=180)
    except AssertionError as exc:  # say what the pods did
        listed = await cluster.client.ok("GET", cluster.PODS)
        states = {p["metadata"]["name"]: p.get("status") for p in listed["items"]}
        raise AssertionError(f"{exc}\npods: {json.dumps(states, indent=1)}") from None
    assert status["currentRevision"] == HEAD
    assert len(status["appliedRevisions"]) == ALL_REVISIONS
    assert condition(status, "Ready")["reason"] == "Applied"
    assert pg_database.versions() == {HEAD}

    [pod] = await pods(cluster, job_name_for(created))
    [init] = pod["status"]["initContainerStatuses"]
    [migrate] = pod["status"]["containerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 0
    terminated = migrate["state"]["terminated"]
    assert terminated["exitCode"] == 0
    # The runner's JSON result, written to /dev/termination-log inside the container.
    result = json.loads(terminated["message"])
    assert result["outcome"] == "Succeeded"
    assert result["reason"] == "Applied"
    assert result["toRevision"] == HEAD
    # imageID: the repository the pod named, at the digest of the local image that ran.
    info = parse_image_info(podman_sync("image", "inspect", LOCAL_APP_IMAGE).stdout)
    assert migrate["imageID"] == f"{APP_IMAGE.rsplit(':', 1)[0]}@{info.digest}"
    assert migrate["containerID"].startswith("podman://")

    # Both containers ran as the images' non-root user with a read-only root and no
    # capabilities (what podman reported of them before they were removed) ...
    runs = {r.container: r for r in cluster.kubelet.runs if r.pod == pod["metadata"]["name"]}
    assert set(runs) == {jobs.INIT_CONTAINER, jobs.MIGRATE_CONTAINER}
    for run in runs.values():
        assert run.details["Config"]["User"] == "65532:65532"
        assert run.details["HostConfig"]["ReadonlyRootfs"] is True
        assert run.details["HostConfig"]["CapDrop"] or run.details["EffectiveCaps"] == []
        assert run.details["State"]["ExitCode"] == 0
    # ... and the runner file the init container wrote into the emptyDir is owned by UID 65532.
    [runner] = cluster.kubelet.workdir.glob(f"*/*/volumes/{jobs.RUNNER_VOLUME}/runner.py")
    assert runner.stat().st_uid == 65532

    # pods/log serves the container's output through the apiserver: its last line is the JSON.
    code, log = await cluster.client.get(
        f"{cluster.PODS}/{pod['metadata']['name']}/log", container=jobs.MIGRATE_CONTAINER
    )
    assert code == 200, log
    assert json.loads(str(log).strip().splitlines()[-1]) == result

    # Each container was removed once its state was read.
    assert await wait_for(
        lambda: _none_left(cluster), within=30, what="the pod's containers to be removed"
    )


async def _none_left(cluster: Cluster) -> bool:
    return not containers_of(cluster)
