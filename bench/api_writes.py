"""Benchmark 3: API writes per migration lifecycle, counted at the emulator, vs a no-op operator.

Each round (interleaved, fresh emulator each) starts one operator, then creates ``--migrations``
DatabaseMigrations one after another (each gating a Deployment of its own unless
``--no-gate``); the local kubelet completes every Job at once (simulated runner result). Ours:
wait until each is terminal (and its Deployment released); the no-op operator: until its
handler has seen each. Then ``--settle`` seconds for trailing writes. Writes are the operator's
create/update/patch/delete requests (by user agent: not the kubelet's, not the benchmark's).
Goal: at most 3 writes per migration more than the no-op operator. Two no-op baselines
(bench/noop_operator.py): kopf's usual handlers (``on.create``/``on.update``/``on.delete``, kopf's
default persistence: what kopf itself writes for such an operator; the goal is judged against
it) and ``on.event`` handlers only (writes nothing: the floor, reported too).

    .venv/bin/python bench/api_writes.py
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BASELINES,
    GOAL_BASELINE,
    GOAL_MISSED,
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
    record,
    spread,
    start_operator,
    stop_operator,
    table,
    verdict,
    wait_until,
)

GOAL_EXTRA = 3
LABELS = {"ours": "alembic-operator", **NOOP_LABELS}


def kind_of(call: object) -> str:
    sub = f"/{call.subresource}" if call.subresource else ""  # type: ignore[attr-defined]
    return f"{call.verb} {call.plural}{sub}"  # type: ignore[attr-defined]


async def one(which: str, n: int, gate: bool, settle: float, prefix: str) -> list[str]:
    """The operator's writes (as 'verb plural/sub') during ``n`` lifecycles."""
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp:
        async with cluster(Path(tmp)) as c:
            tracker = Tracker(c).start()
            env = {"BENCH_NOOP_EXPECT": "1"} if which != "ours" else {}
            op = await start_operator(which, c, Path(tmp), extra_env=env)
            try:
                since = len(c.api.calls)
                for i in range(n):
                    name = f"{prefix}{i}"
                    create_migrations(c, [name], gate=gate)
                    if which == "ours":
                        await wait_until(
                            lambda name=name: (
                                name in tracker.terminal
                                and (not gate or f"{name}-app" in tracker.released)
                            ),
                            within=60,
                            what=f"{name} to finish",
                        )
                    elif i == 0:
                        await wait_until(lambda: noop_seen_at(op), within=60, what="no-op")
                await asyncio.sleep(settle)
                writes = [kind_of(w) for w in c.operator_writes(since)]
            finally:
                await stop_operator(op)
                await tracker.stop()
            return writes


async def run(rounds: int, n: int, gate: bool, settle: float) -> dict[str, list[list[str]]]:
    data: dict[str, list[list[str]]] = {w: [] for w in WITH_BOTH_NOOPS}
    for r in range(rounds):
        for which in WITH_BOTH_NOOPS if r % 2 == 0 else reversed(WITH_BOTH_NOOPS):
            data[which].append(await one(which, n, gate, settle, prefix=f"m{r}-"))
        print(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(
                f"{w} {len(data[w][-1]) / n:.2f} writes/migration" for w in WITH_BOTH_NOOPS
            ),
            flush=True,
        )
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--migrations", type=int, default=10, help="lifecycles per round")
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--no-gate", action="store_true", help="migrations gate no Deployment")
    common_args(parser, rounds=3)
    args = parser.parse_args()
    n, gate = args.migrations, not args.no_gate
    data = asyncio.run(run(args.rounds, n, gate, args.settle))
    per = {w: [len(ws) / n for ws in data[w]] for w in WITH_BOTH_NOOPS}
    ours = median(per["ours"])
    extra = {w: ours - median(per[w]) for w in NOOP_STYLES}
    met = extra[GOAL_BASELINE] <= GOAL_EXTRA
    breakdown: dict[str, collections.Counter[str]] = {
        w: collections.Counter(k for ws in data[w] for k in ws) for w in WITH_BOTH_NOOPS
    }
    kinds = sorted(set().union(*breakdown.values()))
    total = args.rounds * n
    rows = [
        [
            f"vs {LABELS[w]}",
            f"{ours:.2f} ({spread(per['ours'])})",
            f"{median(per[w]):.2f} ({spread(per[w])})",
            f"**+{extra[w]:.2f}**",
            f"<= +{GOAL_EXTRA}: {verdict(extra[w] <= GOAL_EXTRA)}" + baseline_role(w),
        ]
        for w in BASELINES
    ]
    detail = [[k, *(f"{breakdown[w][k] / total:.2f}" for w in WITH_BOTH_NOOPS)] for k in kinds]
    body = (
        f"{args.rounds} interleaved rounds of {n} sequential lifecycles (create → Job → "
        f"simulated instant completion → terminal status{' → Deployment released' if gate else ''})"
        "; writes counted at the emulator by user agent; medians with (min-max).\n\n"
        + table(["writes per migration", "alembic-operator", "no-op", "difference", "goal"], rows)
        + "\n\nBreakdown (writes per migration, all rounds):\n\n"
        + table(["request", *(LABELS[w] for w in WITH_BOTH_NOOPS)], detail)
    )
    record(
        "api_writes", "3. API writes per migration", body, out=None if args.no_record else args.out
    )
    return 0 if met else GOAL_MISSED


if __name__ == "__main__":
    sys.exit(main())
