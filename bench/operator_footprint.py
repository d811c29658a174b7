"""Benchmark 2: idle RSS and start-up time of `alembic-operator run` vs a no-op kopf operator.

One real local control plane (tests/cluster: etcd, kube-apiserver, kube-controller-manager
v1.36.2, the CRD, the chart's ServiceAccount and cluster-wide RBAC) serves every round. Each round
starts each operator (interleaved, alternating which goes first) as a subprocess running as the
chart's ServiceAccount through a fault proxy of its own that records its requests. Start-up
time: process start to the apiserver's answer to its first list of DatabaseMigrations (seen at
the proxy). Idle RSS: /proc/PID/status VmRSS after ``--settle`` seconds with nothing to do.
Goal: RSS <= 1.15x the no-op operator.

    .venv/bin/python bench/operator_footprint.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    GOAL_MISSED,
    OPERATORS,
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


async def one(which: str, c: Cluster, workdir: Path, settle: float) -> tuple[float, float]:
    op = await start_operator(which, c, workdir)
    try:
        listed = op.first_list("databasemigrations")
        assert listed is not None
        await asyncio.sleep(settle)
        rss = rss_kib(op.pid) / 1024
    finally:
        await stop_operator(op)
    return listed - op.started, rss


async def run(rounds: int, settle: float, c: Cluster, workdir: Path) -> dict[str, Any]:
    data: dict[str, dict[str, list[float]]] = {w: {"startup": [], "rss": []} for w in OPERATORS}
    for r in range(rounds):
        for which in OPERATORS if r % 2 == 0 else reversed(OPERATORS):
            startup, rss = await one(which, c, workdir, settle)
            data[which]["startup"].append(startup)
            data[which]["rss"].append(rss)
        print(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(
                f"{w} start {data[w]['startup'][-1]:.2f}s rss {data[w]['rss'][-1]:.1f}MiB"
                for w in OPERATORS
            ),
            flush=True,
        )
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settle", type=float, default=5.0, help="idle seconds before RSS")
    common_args(parser, rounds=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp, cluster(Path(tmp)) as c:
        data = asyncio.run(run(args.rounds, args.settle, c, Path(tmp)))
    ours, noop = data["ours"], data["noop"]
    rss_ratio = median(ours["rss"]) / median(noop["rss"])
    start_ratio = median(ours["startup"]) / median(noop["startup"])
    met = rss_ratio <= GOAL_RSS
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
    ]
    body = (
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
