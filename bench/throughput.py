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

Each flow has its own ``--namespaces`` namespaces. The chart is installed with
``webhook.namespaceSelector: {matchLabels: {migrations: enabled}}`` (the opt-in docs/helm.md and
docs/gating.md describe) and only our namespaces carry that label, as a platform team would
leave namespaces that use no migrations out of the pod webhook; our migration pods are outside
it anyway (its objectSelector). So neither flow's pods pass through the webhook, and every
round counts the requests the apiserver sent to the webhooks
(``apiserver_admission_webhook_request_total``) to show it: goal 0 for the baseline.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.common import (
    GOAL_MISSED,
    Api,
    common_args,
    median,
    ratios,
    record,
    scrape_webhook_series,
    spread,
    table,
    verdict,
    webhook_calls,
)
from bench.runner import generate_project

GOAL_RATIO = 1.2
IMAGE = "bench.local/fast:v1"
DBM_API = "/apis/alembic-operator.dev/v1alpha1"
WAIT_SECONDS = 900
# The product's documented opt-in (docs/helm.md): the webhook sees only namespaces so labelled.
OPT_IN = {"migrations": "enabled"}
CHART_VALUES = ("--set", "webhook.namespaceSelector.matchLabels.migrations=enabled")


def fast_image(workdir: Path) -> dict[str, Any]:
    """An Alembic project with one revision (env.py from migrations/): the runner's work is tiny."""
    from tests.cluster.processes import ImageSpec  # noqa: PLC0415 - cluster benchmarks only

    images = workdir / "images"
    shutil.rmtree(images / "chain1", ignore_errors=True)
    project = generate_project(images, 1)
    return {IMAGE: ImageSpec(root=project)}


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
        await api.call("DELETE", f"{DBM_API}/namespaces/{ns}/databasemigrations", allow=(404,))
        await api.call(
            "DELETE",
            f"/apis/batch/v1/namespaces/{ns}/jobs",
            allow=(404,),
            propagationPolicy="Background",
        )
        await api.call(
            "DELETE", f"/api/v1/namespaces/{ns}/secrets", allow=(404,), labelSelector="bench=round"
        )

    async def no_pods() -> bool:
        pods = (await api.call("GET", "/api/v1/pods", labelSelector="!bench-keep"))["items"]
        return not [p for p in pods if p["metadata"]["namespace"] in namespaces]

    await until(no_pods, within=300, what="the round's pods to be gone", interval=0.5)


@dataclass
class Round:
    seconds: float  # from the first create to all terminal
    cpu: float  # the operator's CPU seconds over the round
    webhook_calls: float  # requests the apiserver sent to the admission webhooks


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
) -> Round:
    """One flow's units of work, from the first create to all terminal."""
    units = [(namespaces[i % len(namespaces)], f"r{round_}-{i}") for i in range(args.migrations)]
    before = await scrape_webhook_series(api.http)
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
    calls = webhook_calls(before, await scrape_webhook_series(api.http))
    if calls:
        print(f"  {flow}: webhook requests {calls}", flush=True)
    await clean(api, namespaces)
    return Round(elapsed, cpu, sum(calls.values()))


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


async def make_namespaces(api: Api, count: int) -> dict[str, list[str]]:
    """Each flow's namespaces: ours opted in to the webhook (OPT_IN), the baseline's not."""
    namespaces = {
        "ours": [f"bench-t{i}" for i in range(count)],
        "raw": [f"bench-raw{i}" for i in range(count)],
    }
    for flow, names in namespaces.items():
        labels = OPT_IN if flow == "ours" else {}
        for ns in names:
            body = {"metadata": {"name": ns, "labels": labels}}
            await api.call("POST", "/api/v1/namespaces", body)
    return namespaces


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, list[Round]]:
    from tests.cluster.sandbox.environments import sandbox_cluster  # noqa: PLC0415

    dbs = workdir / "dbs"
    dbs.mkdir(parents=True, exist_ok=True)
    data: dict[str, list[Round]] = {"ours": [], "raw": []}
    async with sandbox_cluster(
        workdir=workdir,
        extra_images=fast_image(workdir),
        kubelet_namespace=None,
        chart_values=CHART_VALUES,
    ) as sandbox:
        connector = aiohttp.TCPConnector(ssl=sandbox.ssl_context(), limit=64)
        async with aiohttp.ClientSession(sandbox.plane.server, connector=connector) as http:
            api = Api(http)
            namespaces = await make_namespaces(api, args.namespaces)
            template = await warm_up(api, namespaces["ours"][0], dbs)
            for r in range(args.rounds):
                for flow in ("ours", "raw") if r % 2 == 0 else ("raw", "ours"):
                    result = await one_round(
                        api,
                        flow,
                        round_=len(data["ours"]) + len(data["raw"]),
                        args=args,
                        namespaces=namespaces[flow],
                        template=template,
                        dbs=dbs,
                        operator_pid=sandbox.operator.pid,
                    )
                    data[flow].append(result)
                    print(
                        f"  round {r + 1} {flow}: {result.seconds:.1f} s, operator CPU "
                        f"{result.cpu:.1f} s, webhook requests {result.webhook_calls:g}",
                        flush=True,
                    )
    return data


def report(args: argparse.Namespace, data: dict[str, list[Round]]) -> tuple[str, bool]:
    ours, raw = [r.seconds for r in data["ours"]], [r.seconds for r in data["raw"]]
    ratio = median(ours) / median(raw)
    per_migration = [r.cpu / args.migrations for r in data["ours"]]
    idle = [r.cpu / args.migrations for r in data["raw"]]
    hooked = {flow: sum(r.webhook_calls for r in rounds) for flow, rounds in data.items()}
    met_ratio, met_fair = ratio <= GOAL_RATIO, hooked["raw"] == 0
    rows = [
        [
            "all terminal (s)",
            f"{median(ours):.1f} ({spread(ours)})",
            f"{median(raw):.1f} ({spread(raw)})",
            f"**{ratio:.2f}x** (per round {spread(ratios(ours, raw))})",
            f"<= {GOAL_RATIO}x: {verdict(met_ratio)}",
        ],
        [
            "operator CPU s per migration",
            f"{median(per_migration) * 1000:.1f} ms",
            f"{median(idle) * 1000:.1f} ms (the operator idling beside raw Jobs)",
            "",
            "reported",
        ],
        [
            "requests to the admission webhooks, all rounds (apiserver's count)",
            f"{hooked['ours']:g}",
            f"{hooked['raw']:g}",
            "",
            f"baseline 0: {verdict(met_fair)}",
        ],
    ]
    body = "\n".join(
        [
            f"{args.rounds} interleaved rounds per flow; {args.migrations} migrations over "
            f"{args.namespaces} namespaces per flow, each its own SQLite database and one "
            "revision; the same Job controller and test kubelet (every pod a local process) "
            "complete both flows; medians with (min-max). The chart runs with "
            "`webhook.namespaceSelector: {matchLabels: {migrations: enabled}}` (its documented "
            "opt-in) and only our namespaces carry the label, so the raw Jobs' pods never reach "
            "the pod webhook (ours are outside it by its objectSelector): the last row counts "
            "what the apiserver sent to the webhooks.",
            "",
            table(
                ["", "ours (DatabaseMigrations)", "raw Jobs (no operator)", "ratio", "goal"], rows
            ),
        ]
    )
    return body, met_ratio and met_fair


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
