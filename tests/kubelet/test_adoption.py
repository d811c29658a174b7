"""A restarted kubelet adopts the pods an earlier one left: a success ends the Job, a pod that
was running lost its process and counts as failed (NodeLost), a failed one is history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alembic_operator.emulation.apiserver import ApiServer
from alembic_operator.emulation.kubelet import LocalKubelet, SimulatedResult
from tests.emulation.helpers import MERGE, Client
from tests.kubelet.helpers import JOBS, PODS, condition, finished_job, job_body, pods_of, python


async def _leftover(client: Client, job: dict[str, Any], name: str, phase: str) -> None:
    uid = job["metadata"]["uid"]
    labels = {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid}
    labels |= {"batch.kubernetes.io/job-name": job["metadata"]["name"]}
    ref = {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"], "uid": uid}
    spec = job["spec"]["template"]["spec"] | {"nodeName": "local-kubelet"}
    body = {"metadata": {"name": name, "labels": labels, "ownerReferences": [ref]}, "spec": spec}
    await client.ok("POST", PODS, body)
    status = {"status": {"phase": phase}}
    await client.ok("PATCH", f"{PODS}/{name}/status", status, content_type=MERGE)


# leftover phase, backoffLimit -> Job condition, status.failed, pods at the end, leftover reason
CASES: dict[str, tuple[str, int, str, int, int, str | None]] = {
    "a success ends the Job": ("Succeeded", 0, "Complete", 0, 1, None),
    "a lost run fails it at the backoff limit": ("Running", 0, "Failed", 1, 1, "NodeLost"),
    "a lost run counts, then a new pod runs": ("Running", 1, "Complete", 1, 2, "NodeLost"),
    "a pending pod was lost too": ("Pending", 1, "Complete", 1, 2, "NodeLost"),
    "a failed pod is history": ("Failed", 0, "Complete", 0, 2, None),
}


@pytest.mark.parametrize(
    ("phase", "backoff", "outcome", "failed", "pods", "reason"),
    CASES.values(),
    ids=CASES.keys(),
)
async def test_a_restarted_kubelet_adopts_leftover_pods(
    api: ApiServer,
    client: Client,
    tmp_path: Path,
    phase: str,
    backoff: int,
    outcome: str,
    failed: int,
    pods: int,
    reason: str | None,
) -> None:
    job = await client.ok("POST", JOBS, job_body("left", python("print(1)"), backoffLimit=backoff))
    await _leftover(client, job, "left-old", phase)
    async with LocalKubelet(
        api.base_url, images={}, simulate=lambda _c: SimulatedResult(), workdir=tmp_path / "k"
    ):
        done = await finished_job(client, "left")
    assert condition(done, outcome)
    assert int(done["status"].get("failed") or 0) == failed
    found = {p["metadata"]["name"]: p for p in await pods_of(client, "left")}
    assert len(found) == pods
    assert found["left-old"]["status"].get("reason") == reason
