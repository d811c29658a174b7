"""``logs NAME``: the live log of the running migration pod, else ``status.logTail``."""

from __future__ import annotations

from typing import Any, TextIO

from alembic_operator.commands.clusters import Cluster, CommandError

CONTAINER = "migrate"
LIVE_PHASES = ("Running", "Planning")


def newest_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    def created(pod: dict[str, Any]) -> tuple[str, str]:
        meta = pod.get("metadata") or {}
        return (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))

    return max(pods, key=created) if pods else None


def run_logs(cluster: Cluster, out: TextIO, err: TextIO, *, name: str, follow: bool) -> int:
    obj = cluster.get_migration(name)
    status = obj.get("status") or {}
    job = (status.get("job") or {}).get("name")
    if status.get("phase") in LIVE_PHASES and job:
        pod = newest_pod(cluster.list_job_pods(job))
        if pod is not None:
            pod_name = str(pod["metadata"]["name"])
            try:
                return _live(cluster, out, err, pod_name, job, follow=follow)
            except CommandError as exc:
                err.write(f"cannot read the log of pod {pod_name} ({exc.message}); ")
                err.write("showing status.logTail instead\n")
        else:
            err.write(f"Job {job} has no pod yet; showing status.logTail\n")
    tail = status.get("logTail") or ""
    if not tail:
        err.write(f"databasemigration {name} has no log tail in its status\n")
        return 0
    err.write(f"status.logTail of databasemigration {name} ({status.get('phase')}):\n")
    out.write(tail if tail.endswith("\n") else tail + "\n")
    return 0


def _live(cluster: Cluster, out: TextIO, err: TextIO, pod: str, job: str, *, follow: bool) -> int:
    err.write(f"log of pod {pod} (Job {job}, container {CONTAINER}):\n")
    if not follow:
        out.write(cluster.read_log(pod, CONTAINER))
        return 0
    for chunk in cluster.follow_log(pod, CONTAINER):
        out.write(chunk)
        out.flush()
    return 0
