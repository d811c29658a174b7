"""Benchmark 5: many migrations at once, against the same Jobs created with no operator.

The sandbox's real cluster (kube-apiserver, kube-controller-manager v1.36.2 and its Job
controller, the test kubelet running every namespace's pods as local processes, the operator as
a process under the chart's ServiceAccount). Each round creates ``--migrations`` units of work
spread over ``--namespaces`` namespaces, each with its own SQLite database and one revision (a
runner that finishes at once), and waits until all are terminal:

- **ours**: a Secret and a ``DatabaseMigration`` each; done when every migration's status is
  ``Succeeded`` (the operator created the Job, read its result, wrote the status);
- **raw Jobs** (the baseline): a Secret and a Job each, the Job a copy of the one the operator
  created in the warm-up (same init container, runner, image, env; no owner, no operator); done
  when every Job is ``Complete``.

Rounds interleave (ours, raw, raw, ours, ...). Goal: ours <= 1.2x the raw Jobs' time. Also
reported: the operator's CPU seconds per migration (/proc utime + stime over the round).

    .venv/bin/python bench/throughput.py [--rounds 2] [--migrations 300] [--namespaces 30]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.common import (
    GOAL_MISSED,
    common_args,
    median,
    ratios,
    record,
    spread,
    table,
    verdict,
)
from bench.runner import generate_project

GOAL_RATIO = 1.2
IMAGE = "bench.local/fast:v1"
DBM_API = "/apis/alembic-operator.dev/v1alpha1"
WAIT_SECONDS = 900


def fast_image(workdir: Path) -> dict[str, Any]:
    """An Alembic project with one revision (env.py from migrations/): the runner's work is tiny."""
    from tests.cluster.processes import ImageSpec  # noqa: PLC0415 - cluster benchmarks only

    images = workdir / "images"
    shutil.rmtree(images / "chain1", ignore_errors=True)
    project = generate_project(images, 1)
    return {IMAGE: ImageSpec(root=project)}


class Api:
    """The admin's requests, bounded in concurrency (kubectl would fork 600 processes)."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.gate = asyncio.Semaphore(32)

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        async with (
            self.gate,
            self.http.request(method, path, json=body, params=params or None, headers=headers) as r,
        ):
            answer = await r.json()
            if r.status >= 300 and r.status != 404:
                raise RuntimeError(f"{method} {path}: {r.status} {answer.get('message')}")
            return answer


def secret(name: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"url": url},
    }


def migration(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": {"name": name},
        "spec": {
            "image": IMAGE,
            "database": {"urlSecretRef": {"name": name, "key": "url"}},
            "backoffLimit": 0,
        },
    }


def raw_job(template: dict[str, Any], name: str) -> dict[str, Any]:
    """The operator's Job as a person would have written it: no owner, its own Secret."""
    job = copy.deepcopy(template)
    job["metadata"] = {"name": name, "labels": {"bench": "raw"}}
    job.pop("status", None)
    spec = job["spec"]
    spec.pop("selector", None)
    spec["template"]["metadata"] = {"labels": {"bench": "raw"}}
    for container in [
        *spec["template"]["spec"].get("initContainers", []),
        *spec["template"]["spec"]["containers"],
    ]:
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                ref["name"] = name
    job["spec"] = spec
    return job


async def until(predicate: Any, *, within: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {within:g} s")
        await asyncio.sleep(interval)


async def count_done(api: Api, flow: str) -> int:
    if flow == "ours":
        items = (await api.call("GET", f"{DBM_API}/databasemigrations"))["items"]
        failed = [
            m["metadata"]["name"] for m in items if (m.get("status") or {}).get("phase") == "Failed"
        ]
        if failed:
            raise RuntimeError(f"migrations failed: {failed[:3]}")
        return sum((m.get("status") or {}).get("phase") == "Succeeded" for m in items)
    items = (await api.call("GET", "/apis/batch/v1/jobs", labelSelector="bench=raw"))["items"]
    done = 0
    for job in items:
        for c in (job.get("status") or {}).get("conditions") or []:
            if c["status"] == "True" and c["type"] in ("Complete", "Failed"):
                if c["type"] == "Failed":
                    raise RuntimeError(f"raw Job {job['metadata']['name']} failed")
                done += 1
                break
    return done


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def clean(api: Api, namespaces: list[str]) -> None:
    """Delete every round object; wait until no pod is left (the machine is idle again)."""
    for ns in namespaces:
        await api.call("DELETE", f"{DBM_API}/namespaces/{ns}/databasemigrations")
        await api.call(
            "DELETE", f"/apis/batch/v1/namespaces/{ns}/jobs", propagationPolicy="Background"
        )
        await api.call("DELETE", f"/api/v1/namespaces/{ns}/secrets", labelSelector="bench=round")

    async def no_pods() -> bool:
        pods = (await api.call("GET", "/api/v1/pods", labelSelector="!bench-keep"))["items"]
        return not [p for p in pods if p["metadata"]["namespace"] in namespaces]

    await until(no_pods, within=300, what="the round's pods to be gone", interval=0.5)


async def one_round(
    api: Api,
    flow: str,
    *,
    round_: int,
    args: argparse.Namespace,
    namespaces: list[str],
    template: dict[str, Any],
    dbs: Path,
    operator_pid: int,
) -> tuple[float, float]:
    """Seconds to all terminal, operator CPU seconds over the round."""
    units = [(namespaces[i % len(namespaces)], f"r{round_}-{i}") for i in range(args.migrations)]
    cpu0, started = cpu_seconds(operator_pid), time.monotonic()

    async def create(ns: str, name: str) -> None:
        body = secret(name, f"sqlite:///{dbs}/{ns}-{name}.sqlite")
        body["metadata"]["labels"] = {"bench": "round"}
        await api.call("POST", f"/api/v1/namespaces/{ns}/secrets", body)
        if flow == "ours":
            await api.call("POST", f"{DBM_API}/namespaces/{ns}/databasemigrations", migration(name))
        else:
            await api.call("POST", f"/apis/batch/v1/namespaces/{ns}/jobs", raw_job(template, name))

    await asyncio.gather(*(create(ns, name) for ns, name in units))

    async def all_done() -> bool:
        return await count_done(api, flow) >= args.migrations

    await until(all_done, within=WAIT_SECONDS, what=f"{flow}: all {args.migrations} terminal")
    elapsed, cpu = time.monotonic() - started, cpu_seconds(operator_pid) - cpu0
    await clean(api, namespaces)
    return elapsed, cpu


async def warm_up(api: Api, namespace: str, dbs: Path) -> dict[str, Any]:
    """One migration through the operator; its Job is the raw baseline's template."""
    await api.call(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        secret("warm", f"sqlite:///{dbs}/warm.sqlite"),
    )
    await api.call(
        "POST", f"{DBM_API}/namespaces/{namespace}/databasemigrations", migration("warm")
    )

    async def succeeded() -> bool:
        m = await api.call("GET", f"{DBM_API}/namespaces/{namespace}/databasemigrations/warm")
        return (m.get("status") or {}).get("phase") == "Succeeded"

    await until(succeeded, within=120, what="the warm-up migration")
    jobs = (await api.call("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs"))["items"]
    if not jobs:
        raise RuntimeError("the warm-up migration left no Job to copy")
    template = jobs[0]
    await api.call("DELETE", f"{DBM_API}/namespaces/{namespace}/databasemigrations/warm")
    await api.call(
        "DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs", propagationPolicy="Background"
    )
    return template


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from tests.cluster.sandbox.environments import sandbox_cluster  # noqa: PLC0415

    dbs = workdir / "dbs"
    dbs.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"ours": [], "raw": [], "cpu": [], "raw_cpu": []}
    async with sandbox_cluster(
        workdir=workdir, extra_images=fast_image(workdir), kubelet_namespace=None
    ) as sandbox:
        connector = aiohttp.TCPConnector(ssl=sandbox.ssl_context(), limit=64)
        async with aiohttp.ClientSession(sandbox.plane.server, connector=connector) as http:
            api = Api(http)
            namespaces = [f"bench-t{i}" for i in range(args.namespaces)]
            for ns in namespaces:
                await api.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
            template = await warm_up(api, namespaces[0], dbs)
            for r in range(args.rounds):
                for flow in ("ours", "raw") if r % 2 == 0 else ("raw", "ours"):
                    elapsed, cpu = await one_round(
                        api,
                        flow,
                        round_=len(data["ours"]) + len(data["raw"]),
                        args=args,
                        namespaces=namespaces,
                        template=template,
                        dbs=dbs,
                        operator_pid=sandbox.operator.pid,
                    )
                    data[flow].append(elapsed)
                    data["cpu" if flow == "ours" else "raw_cpu"].append(cpu)
                    print(
                        f"  round {r + 1} {flow}: {elapsed:.1f} s, operator CPU {cpu:.1f} s",
                        flush=True,
                    )
    return data


def report(args: argparse.Namespace, data: dict[str, Any]) -> tuple[str, bool]:
    ratio = median(data["ours"]) / median(data["raw"])
    per_migration = [c / args.migrations for c in data["cpu"]]
    idle = [c / args.migrations for c in data["raw_cpu"]]
    met = ratio <= GOAL_RATIO
    rows = [
        [
            "all terminal (s)",
            f"{median(data['ours']):.1f} ({spread(data['ours'])})",
            f"{median(data['raw']):.1f} ({spread(data['raw'])})",
            f"**{ratio:.2f}x** (per round {spread(ratios(data['ours'], data['raw']))})",
            f"<= {GOAL_RATIO}x: {verdict(met)}",
        ],
        [
            "operator CPU s per migration",
            f"{median(per_migration) * 1000:.1f} ms",
            f"{median(idle) * 1000:.1f} ms (the operator idling beside raw Jobs)",
            "",
            "reported",
        ],
    ]
    body = "\n".join(
        [
            f"{args.rounds} interleaved rounds per flow; {args.migrations} migrations over "
            f"{args.namespaces} namespaces, each its own SQLite database and one revision; the "
            "same Job controller and test kubelet (every pod a local process) complete both flows; "
            "medians with (min-max).",
            "",
            table(
                ["", "ours (DatabaseMigrations)", "raw Jobs (no operator)", "ratio", "goal"], rows
            ),
        ]
    )
    return body, met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--migrations", type=int, default=300)
    parser.add_argument("--namespaces", type=int, default=30)
    common_args(parser, rounds=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        data = asyncio.run(run(args, Path(tmp)))
    body, met = report(args, data)
    record(
        "throughput",
        "5. Many migrations at once vs the same Jobs with no operator",
        body,
        out=None if args.no_record else args.out,
    )
    return 0 if met else GOAL_MISSED


if __name__ == "__main__":
    sys.exit(main())
