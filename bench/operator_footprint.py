"""Benchmark 2: idle RSS and start-up time of `alembic-operator run` vs a no-op kopf operator.

One real local control plane (tests/cluster: etcd, kube-apiserver, kube-controller-manager
v1.36.2, the CRD, the chart's ServiceAccount and cluster-wide RBAC) serves every round. Each round
starts each operator (interleaved, alternating which goes first) as a subprocess running as the
chart's ServiceAccount through a fault proxy of its own that records its requests. Start-up
time: process start to the apiserver's answer to its first list of DatabaseMigrations (seen at
the proxy). Then it settles until steady (its start-up pass over: a 5 s step with at most one
request and RSS within 1 MiB; ``--settle S``: S seconds instead); idle RSS: /proc/PID/status
VmRSS then. Goals: RSS <= 1.15x the no-op operator; API requests per minute while nothing
changes <= the no-op's + 1, counted at each operator's proxy over ``--window`` seconds after
settling, once after the rounds with both operators running side by side (each through its
own proxy; the count does not depend on timing): the idle traffic is periodic (ours re-lists the
migrations of each namespace about every 75 s, its cache's 60 s resync; both operators' watches
re-open about every 70 s here), so the default 150 s holds two of each period (the 20 s
counted right after a 45 s settle in an earlier run had seen none of them).

At scale (``--deployments``, ``--migrations``; defaults 5,000 and 500, the issue's figures), the
cluster holds that many Deployments (replicas 0) and DatabaseMigrations spread over
``--namespaces`` namespaces before the rounds start; each migration carries the status the
operator writes after a success for its generation (written by the admin through the status
subresource: running 500 real runner pods would measure the kubelet, not the operator), and
ours is started once before the rounds, not counted (its first start rewrites those statuses
in its own form), so every round sees the steady state of a cluster whose migrations are done.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    GOAL_MISSED,
    NOTES,
    OPERATORS,
    Api,
    Cluster,
    Operator,
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
STEP = 5.0  # s: the settle's sampling step
SETTLE_MAX = 180.0  # s: at most this long to become steady
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


WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def describe(calls: Any) -> dict[str, int]:
    """Requests by "verb resource status", the most frequent first."""
    kinds = Counter(
        f"{c.verb} {c.plural}{'/' + c.subresource if c.subresource else ''} {c.status}"
        for c in calls
    )
    return dict(kinds.most_common(8))


async def settle(op: Operator, *, fixed: float | None) -> float:
    """Wait until the operator is steady; the seconds waited after its first list.

    Steady (the default): a ``STEP``-second step with at most one API request and RSS within
    1 MiB of the step before, i.e. its start-up pass is over (at 500 migrations it takes 10-20 s
    on this machine kind: a read of each migration's Job and Deployment). ``fixed``: that many
    seconds instead. Not steady within ``SETTLE_MAX``: noted in the results, measured anyway.
    """
    if fixed is not None:
        await asyncio.sleep(fixed)
        return fixed
    started = time.monotonic()
    seen, rss = len(op.proxy.calls), rss_kib(op.pid)
    while time.monotonic() - started < SETTLE_MAX:
        await asyncio.sleep(STEP)
        calls, now_rss = len(op.proxy.calls), rss_kib(op.pid)
        if calls - seen <= 1 and abs(now_rss - rss) <= 1024:
            return time.monotonic() - started
        seen, rss = calls, now_rss
    NOTES.add(f"{op.which} was not steady within {SETTLE_MAX:g} s; measured then")
    return time.monotonic() - started


@dataclass
class Sample:
    startup: float  # s: process start to the answer to its first list of DatabaseMigrations
    settled: float  # s after that list until steady (the start-up pass)
    rss: float  # MiB, once steady


async def one(which: str, c: Cluster, workdir: Path, *, settle_s: float | None) -> Sample:
    """One start of an operator alone: start-up, settle, RSS."""
    op = await start_operator(which, c, workdir)
    try:
        listed = op.first_list("databasemigrations")
        assert listed is not None
        settled = await settle(op, fixed=settle_s)
        rss = rss_kib(op.pid) / 1024
    finally:
        await stop_operator(op)
    return Sample(listed - op.started, settled, rss)


async def idle_rates(
    c: Cluster, workdir: Path, *, settle_s: float | None, window: float
) -> dict[str, float]:
    """Requests per minute of each operator with nothing to do: both started (one after the
    other, each settled), then counted at their own proxies over the same ``window``."""
    ops: list[Operator] = []
    try:
        for which in OPERATORS:
            ops.append(await start_operator(which, c, workdir))
            await settle(ops[-1], fixed=settle_s)
        before = [len(op.proxy.calls) for op in ops]
        await asyncio.sleep(window)
        rates = {}
        for op, seen in zip(ops, before, strict=True):
            rates[op.which] = (len(op.proxy.calls) - seen) * 60 / window
            print(f"  {op.which}: idle requests {describe(op.proxy.calls[seen:])}", flush=True)
    finally:
        for op in ops:
            await stop_operator(op)
    return rates


async def warm_up(c: Cluster, workdir: Path, *, settle_s: float | None) -> None:
    """Start ours once, not counted: its first start rewrites the statuses written above into
    its own form, which every later start then finds (the steady state of a cluster it ran)."""
    op = await start_operator("ours", c, workdir)
    try:
        settled = await settle(op, fixed=settle_s)
        written = [x for x in op.proxy.calls if x.verb in WRITE_VERBS]
        print(f"  warm-up: ours steady after {settled:.0f} s; {describe(written)}", flush=True)
    finally:
        await stop_operator(op)


@dataclass
class Results:
    samples: dict[str, list[Sample]]  # per operator, one per round
    idle: dict[str, float]  # requests per minute with nothing to do, per operator


async def run(args: argparse.Namespace, c: Cluster, workdir: Path) -> Results:
    """Rounds interleaved (ours first in odd rounds), then the idle window of both."""
    await populate(
        c, deployments=args.deployments, migrations=args.migrations, namespaces=args.namespaces
    )
    await warm_up(c, workdir, settle_s=args.settle)
    samples: dict[str, list[Sample]] = {w: [] for w in OPERATORS}
    for r in range(args.rounds):
        for which in OPERATORS if r % 2 == 0 else reversed(OPERATORS):
            samples[which].append(await one(which, c, workdir, settle_s=args.settle))
        print(
            f"  round {r + 1}/{args.rounds}: "
            + ", ".join(
                f"{w} start {samples[w][-1].startup:.2f}s steady +{samples[w][-1].settled:.0f}s "
                f"rss {samples[w][-1].rss:.1f}MiB"
                for w in OPERATORS
            ),
            flush=True,
        )
    idle = await idle_rates(c, workdir, settle_s=args.settle, window=args.window)
    return Results(samples, idle)


def report(args: argparse.Namespace, results: Results) -> tuple[str, bool]:
    def col(which: str, field: str) -> list[float]:
        return [getattr(x, field) for x in results.samples[which]]

    def cell(which: str, field: str, fmt: str) -> str:
        values = col(which, field)
        return f"{median(values):{fmt}} ({spread(values)})"

    rss_ratio = median(col("ours", "rss")) / median(col("noop", "rss"))
    start_ratio = median(col("ours", "startup")) / median(col("noop", "startup"))
    idle_extra = results.idle["ours"] - results.idle["noop"]
    met_rss, met_idle = rss_ratio <= GOAL_RSS, idle_extra <= GOAL_IDLE_EXTRA_PER_MINUTE
    per_round = {f: spread(ratios(col("ours", f), col("noop", f))) for f in ("rss", "startup")}
    rows = [
        [
            "idle RSS (MiB), once steady",
            cell("ours", "rss", ".1f"),
            cell("noop", "rss", ".1f"),
            f"**{rss_ratio:.3f}x** (per round {per_round['rss']})",
            f"<= {GOAL_RSS}x: {verdict(met_rss)}",
        ],
        [
            "start-up to first list (s)",
            cell("ours", "startup", ".3f"),
            cell("noop", "startup", ".3f"),
            f"{start_ratio:.3f}x (per round {per_round['startup']})",
            "no goal (reported)",
        ],
        [
            "first list to steady (s, 5 s steps)" if args.settle is None else "settle (s, fixed)",
            cell("ours", "settled", ".0f"),
            cell("noop", "settled", ".0f"),
            "",
            "reported",
        ],
        [
            f"API requests per minute, idle (once, {args.window:g} s counted)",
            f"{results.idle['ours']:.1f}",
            f"{results.idle['noop']:.1f}",
            f"**{idle_extra:+.1f}**",
            f"<= +{GOAL_IDLE_EXTRA_PER_MINUTE:g}: {verdict(met_idle)}",
        ],
    ]
    settled = (
        "once steady (a 5 s step with at most one API request and RSS within 1 MiB: the "
        "start-up pass over)"
        if args.settle is None
        else f"after {args.settle:g} s"
    )
    body = (
        f"The cluster holds {args.deployments} Deployments (replicas 0) and {args.migrations} "
        f"succeeded DatabaseMigrations in {args.namespaces} namespaces; ours started once before "
        f"the rounds (not counted). {args.rounds} interleaved rounds, each operator alone; RSS "
        f"read {settled}; medians with (min-max). After the rounds, both operators started "
        f"again side by side and, once steady, their requests counted over the same "
        f"{args.window:g} s (long enough for every periodic request: bench/README.md). Baseline: "
        "`bench/noop_operator.py` (kopf, same watched resources, no-op `on.event` handlers, "
        "kopf's default login). Both run as the chart's ServiceAccount on a real local control "
        "plane (kube-apiserver v1.36.2), each through its own request-recording proxy.\n\n"
        + table(["", "alembic-operator run", "no-op kopf operator", "ratio", "goal"], rows)
    )
    return body, met_rss and met_idle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="seconds to wait before RSS (default: until steady, see settle())",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=150.0,
        help="idle seconds counted, once (default: two of the longest idle period seen)",
    )
    parser.add_argument("--deployments", type=int, default=5000)
    parser.add_argument("--migrations", type=int, default=500)
    parser.add_argument("--namespaces", type=int, default=50)
    common_args(parser, rounds=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp, cluster(Path(tmp)) as c:
        results = asyncio.run(run(args, c, Path(tmp)))
    body, met = report(args, results)
    record("footprint", "2. Operator footprint", body, out=None if args.no_record else args.out)
    return 0 if met else GOAL_MISSED


if __name__ == "__main__":
    sys.exit(main())
