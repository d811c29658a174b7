"""Benchmark 5: a burst of DatabaseMigrations created at once, vs the no-op operator.

Each round (interleaved, fresh emulator each) starts one operator, then creates ``--count``
migrations at once (in-process, same admission and watch events as over HTTP); the local
kubelet completes every Job at once (simulated). Ours: time until every Job exists and until
every status is terminal. Two no-op baselines (bench/noop_operator.py): with kopf's usual
handlers, until kopf has persisted the handling of every migration (its
last-handled-configuration annotation: the same "done" as our terminal status; the goal's
reference), and with ``on.event`` only, until its handler has seen every migration (the floor).
RSS: the operator's peak (VmHWM) and final VmRSS; reported too: the operator's own reads per
migration (its user agent). Goal: ours (all terminal) <= 2x the no-op time.

    .venv/bin/python bench/burst.py
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BASELINES,
    BENCH_AGENT,
    GOAL_BASELINE,
    GOAL_MISSED,
    KUBELET_AGENT,
    NOOP_LABELS,
    NOOP_STYLES,
    WITH_BOTH_NOOPS,
    Tracker,
    baseline_role,
    cluster,
    common_args,
    create_migrations,
    median,
    noop_seen_at,
    ratios,
    record,
    rss_kib,
    spread,
    start_operator,
    stop_operator,
    table,
    verdict,
    wait_until,
)

GOAL = 2.0
DONE = {"noop-handlers": "all handled", "noop": "handler saw all"}  # each no-op's "done"


async def one(which: str, count: int, limit: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        async with cluster(Path(tmp)) as c:
            tracker = Tracker(c).start()
            env = {"BENCH_NOOP_EXPECT": str(count)} if which != "ours" else {}
            op = await start_operator(which, c, Path(tmp), extra_env=env)
            try:
                await asyncio.sleep(0.5)  # idle, as in the footprint benchmark
                names = [f"b{i}" for i in range(count)]
                t0 = time.monotonic()
                create_migrations(c, names)
                created = time.monotonic() - t0
                out = {"create": created}
                if which == "noop":
                    seen = await wait_until(
                        lambda: noop_seen_at(op), within=limit, what="no-op", interval=0.05
                    )
                    out["done"] = seen - t0
                elif which == "noop-handlers":
                    out["done"] = await _last(
                        tracker.handled, count, t0=t0, limit=limit, what="all handled"
                    )
                else:
                    out["jobs"] = await _last(
                        tracker.job_seen, count, t0=t0, limit=limit, what="every Job"
                    )
                    out["terminal"] = await _last(
                        tracker.terminal, count, t0=t0, limit=limit, what="every status terminal"
                    )
                    out.update(_reads_per_migration(c, count))
                    out["succeeded"] = sum(
                        1
                        for o in c.api.registry.list(
                            c.api.resource_type("databasemigrations"), "default"
                        )[0]
                        if (o.get("status") or {}).get("phase") == "Succeeded"
                    )
                out["hwm"] = rss_kib(op.pid, "VmHWM") / 1024
                out["rss"] = rss_kib(op.pid) / 1024
            finally:
                await stop_operator(op)
                await tracker.stop()
            return out


async def _last(
    moments: dict[str, float], count: int, *, t0: float, limit: float, what: str
) -> float:
    """Seconds from ``t0`` until the last of ``count`` moments (waiting for all of them)."""
    await wait_until(lambda: len(moments) >= count, within=limit, what=what, interval=0.05)
    return max(moments.values()) - t0


def _reads_per_migration(c: Any, count: int) -> dict[str, float]:
    """The operator's own reads (not kopf's lists and watches) per migration, by kind."""
    reads = collections.Counter(
        f"{call.verb} {call.plural}{'/' + call.subresource if call.subresource else ''}"
        for call in c.api.calls
        if not call.is_write
        and call.user_agent.startswith("alembic-operator/")
        and not call.user_agent.startswith((KUBELET_AGENT, BENCH_AGENT))
    )
    return {f"read: {kind}": n / count for kind, n in reads.items()}


async def run(rounds: int, count: int, limit: float) -> dict[str, list[dict[str, float]]]:
    data: dict[str, list[dict[str, float]]] = {w: [] for w in WITH_BOTH_NOOPS}
    for r in range(rounds):
        for which in WITH_BOTH_NOOPS if r % 2 == 0 else reversed(WITH_BOTH_NOOPS):
            data[which].append(await one(which, count, limit))
        print(
            f"  round {r + 1}/{rounds}: " + "; ".join(f"{w} {data[w][-1]}" for w in WITH_BOTH_NOOPS)
        )
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600)
    common_args(parser, rounds=2)
    args = parser.parse_args()
    data = asyncio.run(run(args.rounds, args.count, args.timeout))
    ours = data["ours"]

    def col(rows: list[dict[str, float]], key: str) -> list[float]:
        return [r[key] for r in rows]

    jobs, terminal = col(ours, "jobs"), col(ours, "terminal")
    ratio = {w: median(terminal) / median(col(data[w], "done")) for w in NOOP_STYLES}
    met = ratio[GOAL_BASELINE] <= GOAL
    rows = [
        [
            "every Job exists (s)",
            f"{median(jobs):.2f} ({spread(jobs)})",
            "",
            "",
            "",
        ],
        [
            "every status terminal (s)",
            f"{median(terminal):.2f} ({spread(terminal)})",
            "",
            "",
            "",
        ],
    ]
    for w in BASELINES:
        done = col(data[w], "done")
        rows.append(
            [
                f"{NOOP_LABELS[w]}: {DONE[w]} (s)",
                "",
                f"{median(done):.2f} ({spread(done)})",
                f"**{ratio[w]:.2f}x** (per round {spread(ratios(terminal, done))})",
                f"<= {GOAL:g}x: {verdict(ratio[w] <= GOAL)}" + baseline_role(w),
            ]
        )
    for w in BASELINES:
        for key, what in (("hwm", "peak RSS VmHWM (MiB)"), ("rss", "RSS after the burst (MiB)")):
            rows.append(
                [
                    f"{what}, vs {NOOP_LABELS[w]}",
                    f"{median(col(ours, key)):.1f} ({spread(col(ours, key))})",
                    f"{median(col(data[w], key)):.1f} ({spread(col(data[w], key))})",
                    f"{median(col(ours, key)) / median(col(data[w], key)):.2f}x",
                    "reported",
                ]
            )
    succeeded = col(ours, "succeeded")
    kinds = sorted({k for row in ours for k in row if k.startswith("read: ")})
    reads = ", ".join(
        f"{k.removeprefix('read: ')} {median([row.get(k, 0.0) for row in ours]):.2f}" for k in kinds
    )
    body = (
        f"{args.rounds} interleaved rounds; {args.count} migrations created at once "
        f"(in-process, {median(col(ours, 'create')):.2f} s to create them all, included in the "
        "times); Jobs completed at once by the simulating kubelet, which runs in the emulator's "
        "process (so ours also pays for the emulated pods and Job statuses the no-op never "
        f"causes). Succeeded per round (ours): {', '.join(str(int(s)) for s in succeeded)} of "
        f"{args.count}. The operator's own reads per migration (kopf's lists and watches not "
        f"counted): {reads or 'none'}. Medians with (min-max).\n\n"
        + table(["", "alembic-operator", "no-op", "ours terminal / no-op", "goal"], rows)
    )
    record("burst", "5. Burst", body, out=None if args.no_record else args.out)
    return 0 if met else GOAL_MISSED


if __name__ == "__main__":
    sys.exit(main())
