"""The on-call commands on migrations the real operator ran (real PostgreSQL): ``status`` of a
Succeeded and a Failed one, ``logs`` (the log tail, and the live pod log while the Job runs),
``retry`` of the Failed one (the operator then runs attempt 2)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from alembic_operator.core.jobs import job_name
from tests.commands.helpers import OnCall, check_golden, normalise_age, rows_of_namespace
from tests.databases import Database
from tests.operator.harness import Cluster, add_image, broken_revision, migration, pods, wait_for
from tests.runner.harness import HEAD, copy_project

BROKEN_IMAGE = "registry.example.com/shop/app:broken"
BROKEN_REVISION = "0010_broken"
RETRY = "alembic-operator.dev/retry"


def normalise_log(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", "<time>", text)
    return re.sub(r'"durationSeconds":[0-9.]+', '"durationSeconds":<seconds>', text)


async def test_status_logs_and_retry_of_real_runs(
    cluster: Cluster, oncall: OnCall, pg_database: Database, tmp_path: Path
) -> None:
    project = copy_project(
        tmp_path, extra=broken_revision(BROKEN_REVISION, HEAD, "SELECT * FROM no_such_table_0010")
    )
    add_image(cluster, BROKEN_IMAGE, project)
    await cluster.create_secret("shop-db", pg_database.url)
    await cluster.create(migration("shop"))
    await cluster.wait_phase("shop", "Succeeded")
    await cluster.create(migration("broken", image=BROKEN_IMAGE, backoffLimit=3))
    failed = await cluster.wait_phase("broken", "Failed")

    table = await oncall("status")
    assert table.code == 0, table
    check_golden("status_runs", table.transcript(), normalise_age)
    everywhere = await oncall("status", "-A")
    check_golden(
        "status_all_namespaces",
        everywhere.transcript(),
        normalise_age,
        rows_of_namespace(cluster.ns),
    )
    check_golden("status_failed", (await oncall("status", "broken")).transcript(), normalise_age)
    as_json = await oncall("status", "broken", "-o", "json")
    obj = json.loads(as_json.out)
    assert obj["status"]["phase"] == "Failed"
    assert "managedFields" not in obj["metadata"]

    logs = await oncall("logs", "broken")
    assert logs.code == 0, logs
    assert logs.out.rstrip("\n") == failed["logTail"].rstrip("\n")
    assert "no_such_table_0010" in logs.out
    check_golden("logs_failed", logs.transcript(), normalise_log)

    assert (await oncall("retry", "shop")).code == 3
    retried = await oncall("retry", "broken")
    assert retried.code == 0, retried
    token = (await cluster.get("broken"))["metadata"]["annotations"][RETRY]
    assert f"annotated {RETRY}={token}\n" in retried.out

    async def second_attempt_failed() -> bool:
        status = await cluster.status("broken")
        return status.get("attempts") == 2 and status.get("phase") == "Failed"

    await wait_for(second_attempt_failed, within=60, what="attempt 2 of broken to fail")
    assert len(await cluster.jobs("broken")) == 2
    assert (await cluster.status("broken")).get("retryToken") == token


async def test_logs_of_a_running_job_come_from_its_pod(
    cluster: Cluster, oncall: OnCall, pg_database: Database
) -> None:
    await cluster.create_secret("shop-db", pg_database.url)
    created = await cluster.create(migration("live", suspend=True))
    await cluster.wait_phase("live", "Pending")
    meta = created["metadata"]
    job = job_name("live", uid=meta["uid"], generation=2, attempt=1)
    cluster.kubelet.hold(job, at="exit")  # the runner has written its log; the pod still runs
    await cluster.patch("live", {"spec": {"suspend": False}})
    await cluster.wait_phase("live", "Running")

    async def log_written() -> str | None:
        found = await pods(cluster, job)
        if not found:
            return None
        name = found[-1]["metadata"]["name"]
        status, text = await cluster.client.request(
            "GET", f"{cluster.PODS}/{name}/log", params={"container": "migrate"}
        )
        return name if status == 200 and text else None

    pod = await wait_for(log_written, what="the runner's log")
    # A followed log streams (apiserver -> kubelet) until the container ends.
    following = asyncio.create_task(oncall("logs", "live", "--follow"))

    async def streaming() -> bool:
        await asyncio.sleep(0)
        return (cluster.ns, pod, "migrate") in cluster.kubelet.followed

    await wait_for(streaming, what="the followed log to stream through the apiserver")
    live = await oncall("logs", "live")
    assert not following.done(), following.result()  # the container still runs
    cluster.kubelet.release(job, at="exit")
    followed = await following
    assert (followed.code, followed.out) == (0, live.out), followed
    assert live.code == 0, live
    assert live.err.startswith(f"log of pod {pod} (Job {job}, container migrate)")
    assert '"outcome"' in live.out or HEAD in live.out, live
    await cluster.wait_phase("live", "Succeeded")
