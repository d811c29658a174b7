"""Benchmark 4: latency from the Job's pod completing to status Ready and Deployment released.

Rounds of ``--migrations`` sequential migrations (fresh emulator per round, simulated instant
Jobs, each migration gating a Deployment of its own unless ``--no-gate``). Timestamps are taken
in the emulator as the writes commit (in-process watch): pod phase Succeeded → migration
condition Ready=True → Deployment released (unpaused, held-by annotation gone). The in-run
reference is the emulator's own Job controller (pod Succeeded → Job Complete), an event-driven
controller in the same process. Goal: p99 (pod done → Ready) <= 100 ms.

    .venv/bin/python bench/latency.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    GOAL_MISSED,
    Tracker,
    cluster,
    common_args,
    create_migrations,
    median,
    percentile,
    record,
    spread,
    start_operator,
    stop_operator,
    table,
    verdict,
    wait_until,
)

GOAL_P99_MS = 100.0
SERIES = ("ready", "released", "job_complete")


async def one_round(n: int, gate: bool, prefix: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in SERIES}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        async with cluster(Path(tmp)) as c:
            tracker = Tracker(c).start()
            op = await start_operator("ours", c, Path(tmp))
            try:
                for i in range(n):
                    name = f"{prefix}{i}"
                    create_migrations(c, [name], gate=gate)
                    await wait_until(
                        lambda name=name: (
                            name in tracker.ready
                            and name in tracker.job_complete
                            and (not gate or f"{name}-app" in tracker.released)
                        ),
                        within=60,
                        what=f"{name} to be Ready",
                        interval=0.005,
                    )
                    done = tracker.pod_done[name]
                    out["ready"].append((tracker.ready[name] - done) * 1000)
                    out["job_complete"].append((tracker.job_complete[name] - done) * 1000)
                    if gate:
                        out["released"].append((tracker.released[f"{name}-app"] - done) * 1000)
            finally:
                await stop_operator(op)
                await tracker.stop()
    return out


async def run(rounds: int, n: int, gate: bool) -> list[dict[str, list[float]]]:
    results = []
    for r in range(rounds):
        res = await one_round(n, gate, prefix=f"l{r}-")
        results.append(res)
        print(
            f"  round {r + 1}/{rounds}: ready p50 {median(res['ready']):.1f} ms "
            f"p99 {percentile(res['ready'], 99):.1f} ms; job controller p50 "
            f"{median(res['job_complete']):.1f} ms",
            flush=True,
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--migrations", type=int, default=20, help="migrations per round")
    parser.add_argument("--no-gate", action="store_true", help="migrations gate no Deployment")
    common_args(parser, rounds=3)
    args = parser.parse_args()
    gate = not args.no_gate
    results = asyncio.run(run(args.rounds, args.migrations, gate))
    pooled = {k: [v for res in results for v in res[k]] for k in SERIES}
    p99 = percentile(pooled["ready"], 99)
    met = p99 <= GOAL_P99_MS
    labels = {
        "ready": "pod Succeeded → migration Ready (ours)",
        "released": "pod Succeeded → Deployment released (ours)",
        "job_complete": "pod Succeeded → Job Complete (emulator's Job controller, reference)",
    }
    rows = []
    for k in SERIES:
        if not pooled[k]:
            continue
        per_round_p50 = [median(res[k]) for res in results]
        rows.append(
            [
                labels[k],
                len(pooled[k]),
                f"{median(pooled[k]):.1f}",
                f"{percentile(pooled[k], 99):.1f}",
                f"{max(pooled[k]):.1f}",
                spread(per_round_p50),
                f"p99 <= {GOAL_P99_MS:g} ms: {verdict(met)}" if k == "ready" else "",
            ]
        )
    body = (
        f"{args.rounds} rounds x {args.migrations} sequential migrations (fresh emulator per "
        "round; simulated instant Jobs); times in ms, measured in the emulator as each write "
        "commits.\n\n"
        + table(["interval", "n", "p50", "p99", "max", "per-round p50 (min-max)", "goal"], rows)
    )
    record("latency", "4. Latency", body, out=None if args.no_record else args.out)
    return 0 if met else GOAL_MISSED


if __name__ == "__main__":
    sys.exit(main())
