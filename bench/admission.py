"""Benchmark 4: the latency the pod webhook adds to pod creation, at a steady rate.

The sandbox's real cluster (kube-apiserver v1.36.2 with the chart's MutatingWebhookConfigurations,
the operator serving ``/gate-pods`` as a process). Pods are created through the apiserver as the
cluster admin at ``--rate`` per second for ``--seconds``, in two namespaces, interleaved by round:

- **gated**: a watched namespace; each pod carries ``alembic-operator.dev/migration: M`` where the
  migration M exists and has not succeeded, so the webhook answers with a scheduling gate (the
  full mutation path);
- **baseline**: ``kube-system``, which the chart's ``namespaceSelector`` excludes: the same pods,
  no webhook call.

No kubelet serves either namespace, so the pods stay Pending and cost no CPU; each round's pods
are deleted before the next. Reported: client-side create latency p50/p99 of each, the p99 the
webhook adds (gated p99 - baseline p99, median of the rounds; goal <= 10 ms), the apiserver's own
``apiserver_admission_webhook_admission_duration_seconds`` for the pod webhook, and how many
requests reached the webhooks for the baseline's pods (goal 0).

    .venv/bin/python bench/admission.py [--rounds 5] [--rate 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.common import (
    DURATION_METRIC,
    GOAL_MISSED,
    common_args,
    median,
    percentile,
    record,
    scrape_webhook_series,
    spread,
    table,
    verdict,
    webhook_calls,
)

GOAL_ADDED_P99_MS = 10.0
GATED_NS, BASELINE_NS = "bench-gated", "kube-system"
MIGRATION = "bench-held"
GATE_LABEL = "alembic-operator.dev/migration"


def pod(namespace: str, index: int, round_: int) -> dict[str, Any]:
    labels = {"app": "bench-admission"}
    if namespace == GATED_NS:
        labels[GATE_LABEL] = MIGRATION
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{round_}-{index}", "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "bench.local/app:v2"}]},
    }


async def create_at_rate(
    http: aiohttp.ClientSession, namespace: str, *, rate: float, seconds: float, round_: int
) -> list[float]:
    """Latencies (ms) of ``rate * seconds`` pod creations started on a fixed schedule."""
    latencies: list[float] = []
    failures: list[str] = []

    async def one(i: int) -> None:
        started = time.perf_counter()
        async with http.post(
            f"/api/v1/namespaces/{namespace}/pods", json=pod(namespace, i, round_)
        ) as r:
            body = await r.json()
            if r.status != 201:
                failures.append(f"{r.status}: {body.get('message')}")
                return
            if namespace == GATED_NS and not body["spec"].get("schedulingGates"):
                failures.append(f"{body['metadata']['name']} was not gated")
        latencies.append((time.perf_counter() - started) * 1000)

    count = int(rate * seconds)
    t0 = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"{len(failures)} creations in {namespace} failed: {failures[:3]}")
    return latencies


async def delete_pods(http: aiohttp.ClientSession, namespace: str) -> None:
    params = {"labelSelector": "app=bench-admission", "gracePeriodSeconds": "0"}
    async with http.delete(f"/api/v1/namespaces/{namespace}/pods", params=params) as r:
        r.raise_for_status()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with http.get(f"/api/v1/namespaces/{namespace}/pods", params=params) as r:
            if not (await r.json())["items"]:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the pods in {namespace} were not deleted within 60 s")


def histogram_p99_ms(before: dict[str, float], after: dict[str, float], webhook: str) -> float:
    """p99 (upper bucket bound, ms) of the webhook's admission duration between two scrapes."""
    buckets: dict[float, float] = defaultdict(float)
    for key, value in after.items():
        if key.startswith(DURATION_METRIC) and f'name="{webhook}"' in key:
            le = re.search(r'le="([^"]+)"', key)
            if le:
                buckets[float(le.group(1))] += value - before.get(key, 0.0)
    if not buckets or not buckets[max(buckets)]:
        return float("nan")
    total = buckets[max(buckets)]
    for bound in sorted(buckets):
        if buckets[bound] >= 0.99 * total:
            return bound * 1000
    return float("nan")


async def set_up(http: aiohttp.ClientSession) -> None:
    """The gated namespace and a migration that never succeeds (its Secret does not exist)."""
    async with http.post(
        "/api/v1/namespaces",
        json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATED_NS}},
    ) as r:
        if r.status not in (201, 409):
            raise RuntimeError(await r.text())
    migration = {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": {"name": MIGRATION, "namespace": GATED_NS},
        "spec": {
            "image": "bench.local/app:v2",
            "database": {"urlSecretRef": {"name": "absent", "key": "url"}},
        },
    }
    path = f"/apis/alembic-operator.dev/v1alpha1/namespaces/{GATED_NS}/databasemigrations"
    async with http.post(path, json=migration) as r:
        if r.status not in (201, 409):
            raise RuntimeError(await r.text())


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from tests.cluster.sandbox.environments import sandbox_cluster  # noqa: PLC0415

    data: dict[str, Any] = {"gated": [], "baseline": [], "calls": [], "hist": []}
    async with sandbox_cluster(workdir=workdir) as sandbox:
        connector = aiohttp.TCPConnector(ssl=sandbox.ssl_context(), limit=0)
        async with aiohttp.ClientSession(sandbox.plane.server, connector=connector) as http:
            await set_up(http)
            # A warm-up round each: connections, the webhook's TLS, the operator's index.
            for ns in (GATED_NS, BASELINE_NS):
                await create_at_rate(http, ns, rate=args.rate, seconds=1, round_=0)
                await delete_pods(http, ns)
            for r in range(1, args.rounds + 1):
                order = (GATED_NS, BASELINE_NS) if r % 2 else (BASELINE_NS, GATED_NS)
                for ns in order:
                    before = await scrape_webhook_series(http)
                    latencies = await create_at_rate(
                        http, ns, rate=args.rate, seconds=args.seconds, round_=r
                    )
                    after = await scrape_webhook_series(http)
                    await delete_pods(http, ns)
                    which = "gated" if ns == GATED_NS else "baseline"
                    data[which].append(latencies)
                    if which == "baseline":
                        data["calls"].append(webhook_calls(before, after))
                    else:
                        data["hist"].append(
                            histogram_p99_ms(before, after, "gate.pods.alembic-operator.dev")
                        )
                    print(
                        f"  round {r} {which}: p50 {percentile(latencies, 50):.1f} ms "
                        f"p99 {percentile(latencies, 99):.1f} ms",
                        flush=True,
                    )
    return data


def report(args: argparse.Namespace, data: dict[str, Any]) -> tuple[str, bool]:
    p99 = {w: [percentile(x, 99) for x in data[w]] for w in ("gated", "baseline")}
    p50 = {w: [percentile(x, 50) for x in data[w]] for w in ("gated", "baseline")}
    added = [g - b for g, b in zip(p99["gated"], p99["baseline"], strict=False)]
    baseline_calls = sum(sum(c.values()) for c in data["calls"])
    met_latency = median(added) <= GOAL_ADDED_P99_MS
    met_calls = baseline_calls == 0
    rows = [
        [
            "create p50 (ms)",
            f"{median(p50['gated']):.1f} ({spread(p50['gated'])})",
            f"{median(p50['baseline']):.1f} ({spread(p50['baseline'])})",
            "",
            "reported",
        ],
        [
            "create p99 (ms)",
            f"{median(p99['gated']):.1f} ({spread(p99['gated'])})",
            f"{median(p99['baseline']):.1f} ({spread(p99['baseline'])})",
            f"**+{median(added):.1f} ms** (per round {spread(added)})",
            f"<= +{GOAL_ADDED_P99_MS:g} ms: {verdict(met_latency)}",
        ],
        [
            "webhook p99 by the apiserver (ms, bucket bound)",
            f"{median(data['hist']):g}",
            "-",
            "",
            "reported",
        ],
        [
            "requests to the webhooks for the baseline's pods",
            "-",
            f"{baseline_calls:g}",
            "",
            f"0: {verdict(met_calls)}",
        ],
    ]
    body = "\n".join(
        [
            f"{args.rounds} interleaved rounds; each {args.rate:g} pod creations/s for "
            f"{args.seconds:g} s as the cluster admin; medians of the rounds' percentiles with "
            "(min-max). Gated: pods labelled with a migration that has not succeeded (the webhook "
            "adds the scheduling gate); baseline: the same pods in kube-system, which the chart's "
            "selectors exclude.",
            "",
            table(["", "gated", "baseline", "added", "goal"], rows),
        ]
    )
    return body, met_latency and met_calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="pod creations per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per round")
    common_args(parser, rounds=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-admission-") as tmp:
        data = asyncio.run(run(args, Path(tmp)))
    body, met = report(args, data)
    record(
        "admission",
        "4. Admission latency of the pod webhook",
        body,
        out=None if args.no_record else args.out,
    )
    return 0 if met else GOAL_MISSED


if __name__ == "__main__":
    sys.exit(main())
