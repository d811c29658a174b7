"""Building Jobs and polling their state over HTTP (no fixed sleeps: poll with a deadline)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tests.emulation.helpers import Client
from tests.kubelet.conftest import PYTHON_IMAGE

T = TypeVar("T")
JOBS = "/apis/batch/v1/namespaces/default/jobs"
PODS = "/api/v1/namespaces/default/pods"
SECRETS = "/api/v1/namespaces/default/secrets"
PERMANENT = [10, 11, 12, 13, 14, 15, 16]
RETRYABLE = [20, 21]


def python(code: str, name: str = "main", **extra: Any) -> dict[str, Any]:
    """A container running ``python -c code``."""
    return {"name": name, "image": PYTHON_IMAGE, "command": ["python", "-c", code], **extra}


def job_body(
    name: str,
    *containers: dict[str, Any],
    init: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": list(containers)}
    if init:
        pod_spec["initContainers"] = init
    if volumes:
        pod_spec["volumes"] = volumes
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}, **spec},
    }


def runner_policy() -> dict[str, Any]:
    """The podFailurePolicy the operator gives its Jobs (permanent codes fail at once)."""
    return {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": PERMANENT}},
            {"action": "Count", "onExitCodes": {"operator": "In", "values": RETRYABLE}},
        ]
    }


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 20.0, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.02)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


async def get_job(client: Client, name: str) -> dict[str, Any]:
    status, body = await client.get(f"{JOBS}/{name}")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def pods_of(client: Client, job: str) -> list[dict[str, Any]]:
    status, body = await client.get(PODS, labelSelector=f"batch.kubernetes.io/job-name={job}")
    assert status == 200, body
    return sorted(body["items"], key=lambda p: p["metadata"]["creationTimestamp"])


async def finished_job(client: Client, name: str, within: float = 30.0) -> dict[str, Any]:
    """The Job once it has a Complete or Failed condition."""

    async def probe() -> dict[str, Any] | None:
        job = await get_job(client, name)
        return job if condition(job, "Complete") or condition(job, "Failed") else None

    return await eventually(probe, within=within, what=f"job {name} to finish")


async def pod_where(
    client: Client, job: str, check: Callable[[dict[str, Any]], bool], within: float = 20.0
) -> dict[str, Any]:
    """The first pod of ``job`` satisfying ``check``."""

    async def probe() -> dict[str, Any] | None:
        return next((p for p in await pods_of(client, job) if check(p)), None)

    return await eventually(probe, within=within, what=f"a pod of {job}")


def main_state(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["status"]["containerStatuses"][0]["state"])


def pid_alive(pid: int) -> bool:
    import os  # noqa: PLC0415

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def first_attempt(marker: str, first: str, later: str) -> str:
    """Python code running ``first`` on the first attempt (marker file absent), else ``later``."""
    return (
        f"import os, sys, time\np = {marker!r}\nfirst = not os.path.exists(p)\n"
        f"open(p, 'a').close()\n{first} if first else {later}"
    )
