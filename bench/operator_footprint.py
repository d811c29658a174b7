"""Benchmark 2: idle RSS and start-up time of `alembic-operator run` vs a no-op kopf operator.

One real local control plane (tests/cluster: etcd, kube-apiserver, kube-controller-manager
v1.36.2, the CRD, the chart's ServiceAccount and cluster-wide RBAC) serves every round. Each round
starts each operator (interleaved, alternating which goes first) as a subprocess running as the
chart's ServiceAccount through a fault proxy of its own that records its requests. Start-up
time: process start to the apiserver's answer to its first list of DatabaseMigrations (seen at
the proxy). Idle RSS: /proc/PID/status VmRSS after ``--settle`` seconds with nothing to do.
Goals: RSS <= 1.15x the no-op operator; API requests per minute while nothing changes (counted
at each operator's proxy over ``--window`` seconds after settling) <= the no-op's + 1.

At scale (``--deployments``, ``--migrations``; defaults 5,000 and 500, the issue's figures), the
cluster holds that many Deployments (replicas 0) and DatabaseMigrations spread over
``--namespaces`` namespaces before the rounds start; each migration carries the status the
operator writes after a success for its generation (written by the admin through the status
subresource: running 500 real runner pods would measure the kubelet, not the operator), so it is
the steady state of a cluster whose migrations are done.

    .venv/bin/python bench/operator_footprint.py [--deployments 5000 --migrations 500]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    GOAL_MISSED,
    OPERATORS,
    Api,
    Cluster,
    cluster,
    common_args,
    median,
    ratios,
    record,
    rss_kib,
    spread,
    start_operator,
    stop_operator,
    table,
    verdict,
)

GOAL_RSS = 1.15
GOAL_IDLE_EXTRA_PER_MINUTE = 1.0
IMAGE = "bench.local/app:v1"


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": IMAGE}]},
            },
        },
    }


def migration(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "alembic-operator.dev/v1alpha1",
        "kind": "DatabaseMigration",
        "metadata": {"name": name},
        "spec": {
            "image": IMAGE,
            "database": {"urlSecretRef": {"name": f"{name}-db", "key": "url"}},
            "gate": {"deployments": [name]},
        },
    }


def succeeded(name: str, generation: int) -> dict[str, Any]:
    """The status of a migration that succeeded for its generation (as the operator writes it;
    its Job has since been deleted, as ``ttlSecondsAfterFinished`` does)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "status": {
            "phase": "Succeeded",
            "observedGeneration": generation,
            "job": {"name": f"{name}-apply-1", "uid": str(uuid.uuid4()), "attempt": 1},
            "startedAt": now,
            "finishedAt": now,
            "message": "migrated to r0001",
            "lastSucceeded": {"image": IMAGE, "revision": "r0001"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "MigrationSucceeded",
                    "message": "migrated to r0001",
                    "lastTransitionTime": now,
                    "observedGeneration": generation,
                }
            ],
        }
    }


async def populate(c: Cluster, *, deployments: int, migrations: int, namespaces: int) -> None:
    """Deployments (replicas 0) and succeeded DatabaseMigrations, created by the admin."""
    import aiohttp  # noqa: PLC0415 - the cluster benchmarks only

    if not deployments and not migrations:
        return
    started = time.monotonic()
    connector = aiohttp.TCPConnector(ssl=c.plane.ssl_context())
    async with aiohttp.ClientSession(c.plane.server, connector=connector) as http:
        call = Api(http).call
        names = [f"bench-{i}" for i in range(namespaces)]
        await asyncio.gather(
            *(call("POST", "/api/v1/namespaces", {"metadata": {"name": n}}) for n in names)
        )

        async def one_migration(i: int) -> None:
            ns = names[i % namespaces]
            base = f"/apis/alembic-operator.dev/v1alpha1/namespaces/{ns}/databasemigrations"
            secret = {"metadata": {"name": f"app-{i}-db"}, "stringData": {"url": "sqlite://"}}
            await call("POST", f"/api/v1/namespaces/{ns}/secrets", secret)
            created = await call("POST", base, migration(f"app-{i}"))
            generation = int(created["metadata"]["generation"])
            await call("PATCH", f"{base}/app-{i}/status", succeeded(f"app-{i}", generation))

        await asyncio.gather(
            *(
                call(
                    "POST",
                    f"/apis/apps/v1/namespaces/{names[i % namespaces]}/deployments",
                    deployment(f"app-{i}"),
                )
                for i in range(deployments)
            ),
            *(one_migration(i) for i in range(migrations)),
        )
    print(
        f"  populated {deployments} Deployments and {migrations} migrations in {namespaces} "
        f"namespaces in {time.monotonic() - started:.1f} s",
        flush=True,
    )


async def one(
    which: str, c: Cluster, workdir: Path, *, settle: float, window: float
) -> tuple[float, float, float]:
    """Start-up (s), RSS after settling (MiB), requests per minute in the idle window."""
    op = await start_operator(which, c, workdir)
    try:
        listed = op.first_list("databasemigrations")
        assert listed is not None
        await asyncio.sleep(settle)
        rss = rss_kib(op.pid) / 1024
        before = len(op.proxy.calls)
        await asyncio.sleep(window)
        idle = (len(op.proxy.calls) - before) * 60 / window if window else 0.0
        kinds = Counter(
            f"{c.verb} {c.plural}{'/' + c.subresource if c.subresource else ''} {c.status}"
            for c in op.proxy.calls[before:]
        )
        if kinds:
            print(f"  {which}: idle requests {dict(kinds.most_common(8))}", flush=True)
    finally:
        await stop_operator(op)
    return listed - op.started, rss, idle


async def run(args: argparse.Namespace, c: Cluster, workdir: Path) -> dict[str, Any]:
    await populate(
        c, deployments=args.deployments, migrations=args.migrations, namespaces=args.namespaces
    )
    data: dict[str, dict[str, list[float]]] = {
        w: {"startup": [], "rss": [], "idle": []} for w in OPERATORS
    }
    for r in range(args.rounds):
        for which in OPERATORS if r % 2 == 0 else reversed(OPERATORS):
            startup, rss, idle = await one(
                which, c, workdir, settle=args.settle, window=args.window
            )
            data[which]["startup"].append(startup)
            data[which]["rss"].append(rss)
            data[which]["idle"].append(idle)
        print(
            f"  round {r + 1}/{args.rounds}: "
            + ", ".join(
                f"{w} start {data[w]['startup'][-1]:.2f}s rss {data[w]['rss'][-1]:.1f}MiB "
                f"idle {data[w]['idle'][-1]:.1f}/min"
                for w in OPERATORS
            ),
            flush=True,
        )
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settle", type=float, default=10.0, help="idle seconds before RSS")
    parser.add_argument("--window", type=float, default=30.0, help="idle seconds counted")
    parser.add_argument("--deployments", type=int, default=5000)
    parser.add_argument("--migrations", type=int, default=500)
    parser.add_argument("--namespaces", type=int, default=50)
    common_args(parser, rounds=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp, cluster(Path(tmp)) as c:
        data = asyncio.run(run(args, c, Path(tmp)))
    ours, noop = data["ours"], data["noop"]
    rss_ratio = median(ours["rss"]) / median(noop["rss"])
    start_ratio = median(ours["startup"]) / median(noop["startup"])
    idle_extra = median(ours["idle"]) - median(noop["idle"])
    met_idle = idle_extra <= GOAL_IDLE_EXTRA_PER_MINUTE
    met = rss_ratio <= GOAL_RSS and met_idle
    rows = [
        [
            "idle RSS (MiB)",
            f"{median(ours['rss']):.1f} ({spread(ours['rss'])})",
            f"{median(noop['rss']):.1f} ({spread(noop['rss'])})",
            f"**{rss_ratio:.3f}x** (per round {spread(ratios(ours['rss'], noop['rss']))})",
            f"<= {GOAL_RSS}x: {verdict(met)}",
        ],
        [
            "start-up to first list (s)",
            f"{median(ours['startup']):.3f} ({spread(ours['startup'])})",
            f"{median(noop['startup']):.3f} ({spread(noop['startup'])})",
            f"{start_ratio:.3f}x (per round {spread(ratios(ours['startup'], noop['startup']))})",
            "no goal (reported)",
        ],
        [
            f"API requests per minute, idle ({args.window:g} s counted)",
            f"{median(ours['idle']):.1f} ({spread(ours['idle'])})",
            f"{median(noop['idle']):.1f} ({spread(noop['idle'])})",
            f"**{idle_extra:+.1f}**",
            f"<= +{GOAL_IDLE_EXTRA_PER_MINUTE:g}: {verdict(met_idle)}",
        ],
    ]
    body = (
        f"The cluster holds {args.deployments} Deployments (replicas 0) and {args.migrations} "
        f"succeeded DatabaseMigrations in {args.namespaces} namespaces. "
        f"{args.rounds} interleaved rounds; RSS read after {args.settle:g} s idle; medians with "
        "(min-max). Baseline: `bench/noop_operator.py` (kopf, same watched resources, no-op "
        "`on.event` handlers, kopf's default login). Both run as the chart's ServiceAccount on a "
        "real local control plane (kube-apiserver v1.36.2), each through its own request-"
        "recording proxy.\n\n"
        + table(["", "alembic-operator run", "no-op kopf operator", "ratio", "goal"], rows)
    )
    record(
        "footprint",
        "2. Operator footprint",
        body,
        out=None if args.no_record else args.out,
    )
    return 0 if met else GOAL_MISSED


if __name__ == "__main__":
    sys.exit(main())
