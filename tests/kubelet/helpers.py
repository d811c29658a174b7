"""Building Jobs and pods, polling their state over HTTP (no fixed sleeps: poll with a deadline)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tests.cluster.client import Client
from tests.kubelet.conftest import PYTHON_IMAGE

T = TypeVar("T")
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


def jobs(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def pods(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods"


def secrets(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets"


async def get_job(client: Client, namespace: str, name: str) -> dict[str, Any]:
    status, body = await client.get(f"{jobs(namespace)}/{name}")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def pods_of(client: Client, namespace: str, job: str) -> list[dict[str, Any]]:
    status, body = await client.get(
        pods(namespace), labelSelector=f"batch.kubernetes.io/job-name={job}"
    )
    assert status == 200, body
    return sorted(body["items"], key=lambda p: p["metadata"]["creationTimestamp"])


async def finished_job(
    client: Client, namespace: str, name: str, within: float = 30.0
) -> dict[str, Any]:
    """The Job once it has a Complete or Failed condition."""

    async def probe() -> dict[str, Any] | None:
        job = await get_job(client, namespace, name)
        return job if condition(job, "Complete") or condition(job, "Failed") else None

    return await eventually(probe, within=within, what=f"job {name} to finish")


async def pod_where(
    client: Client,
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    within: float = 20.0,
) -> dict[str, Any]:
    """The pod ``name`` once it satisfies ``check``."""

    async def probe() -> dict[str, Any] | None:
        status, pod = await client.get(f"{pods(namespace)}/{name}")
        return pod if status == 200 and check(pod) else None

    return await eventually(probe, within=within, what=f"pod {name}")


def main_state(pod: dict[str, Any]) -> dict[str, Any]:
    """The first container's state ({} before the kubelet reported one)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return dict(statuses[0].get("state") or {})


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


def pod_body(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": list(containers), **spec},
    }
