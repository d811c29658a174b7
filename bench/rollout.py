"""Benchmark 3: apply → gated rollout complete, ours vs the Helm hook flow; API requests per
migration lifecycle, counted by the apiserver's audit log.

One real local control plane (the sandbox's: etcd, kube-apiserver, kube-controller-manager v1.36.2,
the chart's RBAC and webhook, a test kubelet running pods as local processes, the operator as a
process under the chart's ServiceAccount) serves every round; the apiserver writes an audit log
(level Metadata). Each round gets a fresh PostgreSQL database and its own object names.

- **ours**: ``kubectl apply --server-side -f -`` of a Secret, a ``DatabaseMigration`` and a
  Deployment whose pod template carries ``alembic-operator.dev/migration`` (the race-free pod
  gate: new-version pods are created with a scheduling gate the operator lifts once the
  migration has succeeded).
- **helm**: ``helm upgrade --install`` of ``bench/peer-chart`` (a ``pre-install,pre-upgrade`` hook
  Job running ``alembic upgrade head`` in the app image, ``before-hook-creation``, then the
  Deployment), the real ``helm`` binary, without ``--wait``.

Both are timed from just before the command starts to the moment the watch shows the Deployment
rolled out (every replica updated and available, no old replica left). ``install``: from nothing;
``upgrade``: from a rolled-out first version (1 revision) to a version with ``--revisions`` more.
Rounds interleave the flows (A B, B A, ...). Goal: ours <= 0.75x Helm's time.

The operator's API requests in each of our rounds (from the apply to the rollout, plus
``--settle`` seconds after) are read from the audit log (user = the operator's ServiceAccount):
goal <= 10 writes per lifecycle, Events included; and its writes in a quiet window after all
rounds (nothing to do) are reported: goal 0.

    .venv/bin/python bench/rollout.py [--rounds 5] [--revisions 20] [--replicas 1 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import yaml

from bench.common import (
    GOAL_MISSED,
    REPO,
    common_args,
    create_database,
    drop_database,
    median,
    ratios,
    record,
    sa_url,
    spread,
    table,
    verdict,
)
from bench.runner import generate_project

GOAL_RATIO = 0.75
GOAL_WRITES = 10
NS = "default"
V1, V2 = "bench.local/app:v1", "bench.local/app:v2"
GATE_LABEL = "alembic-operator.dev/migration"
ROUND_SECONDS = 180
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
PHASES = ("job created", "runner running", "runner done", "gate lifted", "rolled out")
SLEEPER = ("python", "-c", "import time\nwhile True: time.sleep(3600)")


# --- the app images: Alembic projects played by local folders ------------------------------------


def _fresh_project(root: Path, revisions: int) -> Path:
    """bench/runner.py's generated chain of ``revisions`` (a previous run's removed first)."""
    shutil.rmtree(root / f"chain{revisions}", ignore_errors=True)
    return generate_project(root, revisions)


def app_images(workdir: Path, revisions: int) -> dict[str, Any]:
    from tests.cluster.processes import ImageSpec  # noqa: PLC0415 - cluster benchmarks only

    return {
        ref: ImageSpec(root=_fresh_project(workdir / "images", n), entrypoint=SLEEPER)
        for ref, n in ((V1, 1), (V2, 1 + revisions))
    }


WATCHES = {
    "deployment": f"/apis/apps/v1/namespaces/{NS}/deployments",
    "job": f"/apis/batch/v1/namespaces/{NS}/jobs",
    "pod": f"/api/v1/namespaces/{NS}/pods",
    "migration": f"/apis/alembic-operator.dev/v1alpha1/namespaces/{NS}/databasemigrations",
}


# --- what the watch saw --------------------------------------------------------------------------


@dataclass
class Watcher:
    """Deployments, Jobs, pods and DatabaseMigrations of the namespace, as the admin's watch sees
    them: the latest object of each, and when each was first seen in a state (monotonic)."""

    session: aiohttp.ClientSession
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._watch(k, p)) for k, p in WATCHES.items()]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _watch(self, kind: str, path: str) -> None:
        """List, then watch from the list's resourceVersion; again after an ERROR or an end."""
        try:
            while True:
                async with self.session.get(path) as response:
                    response.raise_for_status()
                    listed = await response.json()
                self._relisted(kind, listed["items"])
                params = {
                    "watch": "true",
                    "timeoutSeconds": "3600",
                    "resourceVersion": listed["metadata"]["resourceVersion"],
                }
                async with self.session.get(path, params=params, timeout=None) as response:
                    response.raise_for_status()
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":  # e.g. 410 Gone: list again
                            break
                        self._note(kind, event["type"], event["object"])
                        async with self.changed:
                            self.changed.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken watch must not pass silently
            self.failures.append(f"the {kind} watch failed: {exc!r}")
            async with self.changed:
                self.changed.notify_all()

    def _relisted(self, kind: str, items: list[dict[str, Any]]) -> None:
        for key in [k for k in self.objects if k[0] == kind]:
            del self.objects[key]
        for obj in items:
            self._note(kind, "ADDED", obj)

    def _note(self, kind: str, change: str, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        name = obj["metadata"]["name"]
        if change == "DELETED":
            self.objects.pop((kind, name), None)
            self._forget(kind, name)  # a later object of this name starts over
            return
        uid = obj["metadata"].get("uid", "")
        previous = self.objects.get((kind, name))
        if previous is not None and previous["metadata"].get("uid", "") != uid:
            self._forget(kind, name)  # the same name again (Helm's before-hook-creation Job)
        self.objects[(kind, name)] = obj
        for mark in _marks(kind, obj):
            self.seen.setdefault(mark, now)

    def _forget(self, kind: str, name: str) -> None:
        prefixes = (f"{kind}/{name}/", f"runner/{name}/") if kind == "job" else (f"{kind}/{name}/",)
        for key in [k for k in self.seen if k.startswith(prefixes)]:
            del self.seen[key]

    async def wait(self, predicate: Callable[[], bool], *, within: float, what: str) -> None:
        async def until() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: predicate() or bool(self.failures))

        try:
            await asyncio.wait_for(until(), timeout=within)
        except TimeoutError:
            raise RuntimeError(f"{what} did not happen within {within:g} s") from None
        if self.failures:
            raise RuntimeError("; ".join(self.failures))

    def rolled_out(self, name: str, image: str, replicas: int) -> bool:
        deployment = self.objects.get(("deployment", name))
        if deployment is None:
            return False
        spec, status = deployment["spec"], deployment.get("status") or {}
        return (
            spec["template"]["spec"]["containers"][0]["image"] == image
            and status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
        )


def _marks(kind: str, obj: dict[str, Any]) -> list[str]:
    """The states an object is in, as ``kind/name/state`` (first-seen times make the profile)."""
    name, status = obj["metadata"]["name"], obj.get("status") or {}
    marks = [f"{kind}/{name}/seen"]
    if kind == "job" and any(
        c.get("type") in ("Complete", "SuccessCriteriaMet") and c.get("status") == "True"
        for c in status.get("conditions") or []
    ):
        marks.append(f"job/{name}/complete")
    if kind == "pod":
        labels = obj["metadata"].get("labels") or {}
        # Keyed by the Job's uid too: Helm's next hook Job has the same name, and the previous
        # one's pod still changes (finalizer removed, deleted) after that Job is gone.
        job, uid = labels.get("job-name"), labels.get("batch.kubernetes.io/controller-uid")
        phase = status.get("phase")
        if job and phase in ("Running", "Succeeded"):
            marks.append(f"runner/{job}/{uid}/running")
        if job and phase == "Succeeded":
            marks.append(f"runner/{job}/{uid}/done")
        app = labels.get("app")
        if app and not obj["spec"].get("schedulingGates") and obj["spec"].get("nodeName"):
            marks.append(f"app/{app}/bound")
    if kind == "migration" and status.get("phase") == "Succeeded":
        # Per generation: an upgrade's success is not the first version's.
        marks.append(f"migration/{name}/succeeded/{status.get('observedGeneration')}")
    return marks


# --- the two flows -------------------------------------------------------------------------------


def ours_manifests(tag: str, *, image: str, url: str, replicas: int) -> list[dict[str, Any]]:
    migration, app = f"m-{tag}", f"app-{tag}"
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"db-{tag}"},
            "stringData": {"url": url},
        },
        {
            "apiVersion": "alembic-operator.dev/v1alpha1",
            "kind": "DatabaseMigration",
            "metadata": {"name": migration},
            "spec": {
                "image": image,
                "revision": "head",
                "database": {"urlSecretRef": {"name": f"db-{tag}", "key": "url"}},
                "backoffLimit": 0,
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": app},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app}},
                "strategy": {"rollingUpdate": {"maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": {"app": app, GATE_LABEL: migration}},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                },
            },
        },
    ]


@dataclass
class Env:
    sandbox: Any  # tests.cluster.sandbox.environments.Sandbox
    watcher: Watcher
    audit_log: Path
    helm: str


async def _run(argv: list[str], *, stdin: str | None = None) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate(stdin.encode() if stdin else None)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed: {out.decode()[-2000:]}")


async def _kubectl(env: Env, *args: str, stdin: str | None = None) -> None:
    """The real kubectl as the cluster admin, in the benchmark's namespace."""
    from tests.cluster.fixtures import tool  # noqa: PLC0415 - cluster benchmarks only

    kubeconfig = str(env.sandbox.kubeconfig)
    await _run([str(tool("kubectl")), "--kubeconfig", kubeconfig, "-n", NS, *args], stdin=stdin)


async def _helm(env: Env, *args: str) -> None:
    """The real helm as the cluster admin, in the benchmark's namespace."""
    await _run([env.helm, *args, "--kubeconfig", str(env.sandbox.kubeconfig), "-n", NS])


async def _delete(env: Env, *objects: str) -> None:
    """``kubectl delete`` of ``kind/name`` objects, absent ones ignored, without waiting."""
    await _kubectl(env, "delete", *objects, "--ignore-not-found", "--wait=false")


async def apply_ours(env: Env, tag: str, *, image: str, url: str, replicas: int) -> None:
    bodies = ours_manifests(tag, image=image, url=url, replicas=replicas)
    # Server-side apply, as Argo CD and Flux apply: a client-side apply of objects that exist
    # first builds a strategic merge patch from the OpenAPI schema (measured: ≈0.6 s before its
    # first PATCH on this machine), a cost of the client that Helm (Go types) does not pay.
    await _kubectl(
        env, "apply", "--server-side", "--field-manager=bench", "-f", "-",
        stdin=yaml.safe_dump_all(bodies),
    )  # fmt: skip


async def apply_helm(env: Env, tag: str, *, image: str, url: str, replicas: int) -> None:
    chart = str(REPO / "bench" / "peer-chart")
    values = (f"image={image}", f"replicas={replicas}", f"databaseUrl={url}")
    await _helm(env, "upgrade", "--install", f"app-{tag}", chart, *(f"--set={v}" for v in values))


APPLY = {"ours": apply_ours, "helm": apply_helm}


@dataclass
class Outcome:
    seconds: float
    phases: dict[str, float]
    started_wall: float
    ended_wall: float


async def one_round(env: Env, flow: str, *, tag: str, scenario: str, replicas: int) -> Outcome:
    """One lifecycle of ``flow``; timed from the (last) apply to the rollout."""
    database = create_database()
    url = sa_url(database)
    app = f"app-{tag}"
    try:
        if scenario == "upgrade":
            await APPLY[flow](env, tag, image=V1, url=url, replicas=replicas)
            await env.watcher.wait(
                lambda: env.watcher.rolled_out(app, V1, replicas),
                within=ROUND_SECONDS,
                what=f"{flow} {tag}: the first version's rollout",
            )
        started_wall, started = time.time(), time.monotonic()
        await APPLY[flow](env, tag, image=V2, url=url, replicas=replicas)
        await env.watcher.wait(
            lambda: env.watcher.rolled_out(app, V2, replicas),
            within=ROUND_SECONDS,
            what=f"{flow} {tag}: the rollout",
        )
        ended = time.monotonic()
        return Outcome(
            ended - started,
            _profile(env.watcher, tag, flow, started),
            started_wall,
            started_wall + (ended - started),
        )
    finally:
        await _clean(env, flow, tag)
        drop_database(database)


def _profile(watcher: Watcher, tag: str, flow: str, started: float) -> dict[str, float]:
    """Seconds from the apply to each phase of the newest Job of this round."""
    jobs = sorted(
        (at, key.split("/")[1])
        for key, at in watcher.seen.items()
        if key.startswith("job/") and key.endswith("/seen") and tag in key and at >= started
    )
    job = jobs[-1][1] if jobs else ""
    uid = (watcher.objects.get(("job", job)) or {"metadata": {}})["metadata"].get("uid")
    successes = sorted(
        (at, key)
        for key, at in watcher.seen.items()
        if key.startswith(f"migration/m-{tag}/succeeded/")
    )
    gate = successes[-1][1] if flow == "ours" and successes else f"job/{job}/complete"
    keys = {
        "job created": f"job/{job}/seen",
        "runner running": f"runner/{job}/{uid}/running",
        "runner done": f"runner/{job}/{uid}/done",
        "gate lifted": gate,
    }
    out = {phase: watcher.seen[key] - started for phase, key in keys.items() if key in watcher.seen}
    return out


async def _clean(env: Env, flow: str, tag: str) -> None:
    """Delete the round's objects (their pods stop), so later rounds run on an idle machine."""
    if flow == "helm":
        await _helm(env, "uninstall", f"app-{tag}")
        await _delete(env, f"job/app-{tag}-migrate")  # a hook Job: helm uninstall leaves it
    else:
        objects = (f"deployment/app-{tag}", f"databasemigration/m-{tag}", f"secret/db-{tag}")
        await _delete(env, *objects)
    await env.watcher.wait(
        lambda: (
            not any(
                k == "pod" and (o["metadata"].get("labels") or {}).get("app") == f"app-{tag}"
                for (k, _), o in env.watcher.objects.items()
            )
        ),
        within=60,
        what=f"{flow} {tag}: its pods to be gone",
    )


# --- the audit log -------------------------------------------------------------------------------

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [{"level": "Metadata"}],
}


def audit_flags(folder: Path) -> tuple[list[str], Path]:
    folder.mkdir(parents=True, exist_ok=True)
    policy, log = folder / "audit-policy.yaml", folder / "audit.log"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={log}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
    ], log


def operator_requests(log: Path, *, since: float, until: float) -> Counter[str]:
    """The operator's requests received in [since, until] (wall clock), as "verb resource"."""
    from datetime import datetime  # noqa: PLC0415

    from tests.cluster.fixtures import OPERATOR_NAMESPACE  # noqa: PLC0415

    prefix = f"system:serviceaccount:{OPERATOR_NAMESPACE}:"
    counts: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if not event.get("user", {}).get("username", "").startswith(prefix):
            continue
        at = datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if not since <= at.timestamp() <= until:
            continue
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "?") + (
            f"/{ref['subresource']}" if ref.get("subresource") else ""
        )
        counts[f"{event['verb']} {resource}"] += 1
    return counts


def writes(counts: Counter[str]) -> int:
    return sum(n for key, n in counts.items() if key.split()[0] in WRITE_VERBS)


# --- the run -------------------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, workdir: Path
) -> tuple[dict[str, Any], list[Counter[str]], Counter[str]]:
    from tests.cluster.fixtures import tool  # noqa: PLC0415 - cluster benchmarks only
    from tests.cluster.sandbox.environments import sandbox_cluster  # noqa: PLC0415

    flags, audit_log = audit_flags(workdir / "audit")
    results: dict[str, Any] = {}
    lifecycles: list[Counter[str]] = []
    async with sandbox_cluster(
        workdir=workdir, extra_images=app_images(workdir, args.revisions), apiserver_flags=flags
    ) as sandbox:
        connector = aiohttp.TCPConnector(ssl=sandbox.ssl_context())
        async with aiohttp.ClientSession(sandbox.plane.server, connector=connector) as http:
            watcher = Watcher(http)
            watcher.start()
            env = Env(sandbox, watcher, audit_log, str(tool("helm")))
            try:
                n = 0
                for scenario in args.scenarios:
                    for replicas in args.replicas:
                        key = (scenario, replicas)
                        results[key] = {flow: [] for flow in APPLY}
                        for r in range(args.rounds):
                            for flow in ("ours", "helm") if r % 2 == 0 else ("helm", "ours"):
                                n += 1
                                tag = f"{flow}{n:03d}"
                                outcome = await one_round(
                                    env, flow, tag=tag, scenario=scenario, replicas=replicas
                                )
                                results[key][flow].append(outcome)
                                if flow == "ours":
                                    await asyncio.sleep(args.settle)  # late writes still count
                                    lifecycles.append(
                                        operator_requests(
                                            audit_log,
                                            since=outcome.started_wall - 0.5,
                                            until=outcome.ended_wall + args.settle,
                                        )
                                    )
                                print(
                                    f"  {scenario} x{replicas} round {r + 1} {flow}: "
                                    f"{outcome.seconds:.2f}s {outcome.phases}",
                                    flush=True,
                                )
                quiet_from = time.time()
                await asyncio.sleep(args.quiet)
                quiet = operator_requests(audit_log, since=quiet_from, until=time.time())
            finally:
                await watcher.stop()
    return results, lifecycles, quiet


def report(
    args: argparse.Namespace,
    results: dict[str, Any],
    lifecycles: list[Counter[str]],
    quiet: Counter[str],
) -> tuple[str, bool]:
    rows, met = [], True
    for (scenario, replicas), flows in results.items():
        ours = [o.seconds for o in flows["ours"]]
        helm = [o.seconds for o in flows["helm"]]
        per = ratios(ours, helm)
        ratio = median(ours) / median(helm)
        met &= ratio <= GOAL_RATIO
        rows.append(
            [
                f"{scenario}, {replicas} replica(s)",
                f"{median(ours):.2f} ({spread(ours)})",
                f"{median(helm):.2f} ({spread(helm)})",
                f"**{ratio:.2f}x** (per round {spread(per)})",
                f"<= {GOAL_RATIO}x: {verdict(ratio <= GOAL_RATIO)}",
            ]
        )
    body = [
        f"{args.rounds} interleaved rounds per row; {args.revisions} one-table revisions; a fresh "
        "PostgreSQL database per round; seconds from the start of `kubectl apply` / "
        "`helm upgrade --install` to the Deployment rolled out (watch), medians with (min-max).",
        "",
        table(["scenario", "ours s", "Helm hook s", "ours / Helm", "goal"], rows),
        "",
        "Where the time goes (medians, seconds after the apply; Helm's gate is its hook Job "
        "complete, ours the migration's `Succeeded`):",
        "",
    ]
    prow = []
    for (scenario, replicas), flows in results.items():
        for flow in ("ours", "helm"):
            cells = [f"{flow}, {scenario}, {replicas}"]
            for phase in PHASES[:-1]:
                values = [o.phases[phase] for o in flows[flow] if phase in o.phases]
                cells.append(f"{median(values):.2f}" if values else "-")
            cells.append(f"{median([o.seconds for o in flows[flow]]):.2f}")
            prow.append(cells)
    body += [table(["flow, scenario, replicas", *PHASES], prow), ""]
    w = [writes(c) for c in lifecycles]
    reads = [sum(c.values()) - writes(c) for c in lifecycles]
    total: Counter[str] = Counter()
    for c in lifecycles:
        total.update(c)
    write_rows = [
        [k, f"{n / max(1, len(lifecycles)):.1f}"]
        for k, n in sorted(total.items())
        if k.split()[0] in WRITE_VERBS
    ]
    met_writes = bool(w) and median(w) <= GOAL_WRITES
    met_quiet = writes(quiet) == 0
    body += [
        "API requests of the operator per lifecycle (the apiserver's audit log, user = the "
        f"operator's ServiceAccount, from the apply to the rollout + {args.settle:g} s):",
        "",
        table(
            ["", "median (min-max)", "goal"],
            [
                [
                    "writes (Events included)",
                    f"{median(w):g} ({spread(w)})",
                    f"<= {GOAL_WRITES}: {verdict(met_writes)}",
                ],
                ["reads (get, list, watch)", f"{median(reads):g} ({spread(reads)})", "reported"],
                [
                    f"writes in {args.quiet:g} s with nothing to do",
                    str(writes(quiet)),
                    f"0: {verdict(met_quiet)}",
                ],
            ],
        ),
        "",
        "Writes per lifecycle by verb and resource (mean):",
        "",
        table(["verb resource", "per lifecycle"], write_rows),
    ]
    return "\n".join(body), met and met_writes and met_quiet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--revisions", type=int, default=20)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument(
        "--scenarios", nargs="+", default=["install", "upgrade"], choices=["install", "upgrade"]
    )
    parser.add_argument("--settle", type=float, default=2.0, help="s after a rollout still counted")
    parser.add_argument("--quiet", type=float, default=10.0, help="s of nothing to do, counted")
    parser.add_argument("--workdir", type=Path, help="keep the run's files here")
    common_args(parser, rounds=5)
    args = parser.parse_args()
    if args.workdir:  # kept: the operator's log, the audit log, the kubelet's pod logs
        results, lifecycles, quiet = asyncio.run(run(args, args.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
            results, lifecycles, quiet = asyncio.run(run(args, Path(tmp)))
    body, met = report(args, results, lifecycles, quiet)
    record(
        "rollout",
        "3. Apply to gated rollout vs the Helm hook flow; API requests per lifecycle",
        body,
        out=None if args.no_record else args.out,
    )
    return 0 if met else GOAL_MISSED


if __name__ == "__main__":
    sys.exit(main())
