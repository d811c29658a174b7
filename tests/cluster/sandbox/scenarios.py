"""The sandbox's story: a migration that succeeds and releases its Deployment, then a broken
one that fails, keeps the Deployment held and shows the log tail; then the metrics.

Objects are applied and changed with the real ``kubectl`` (as a person would); the timeline
watches the real apiserver. Returns the list of things that did not behave (empty means the
sandbox exits 0).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import yaml

from tests.cluster.sandbox.environments import (
    APP_IMAGE,
    BROKEN_IMAGE,
    BROKEN_REVISION,
    Sandbox,
    checkout_file,
)
from tests.cluster.sandbox.timelines import HELD_BY, Timeline

MIGRATION, DEPLOYMENT = "shop-schema", "shop-web"
ROUND_SECONDS = 120
METRICS_SECONDS = 10


async def run_scenario(
    sandbox: Sandbox, *, database_url: str, out: TextIO = sys.stdout
) -> list[str]:
    problems: list[str] = []
    connector = aiohttp.TCPConnector(ssl=sandbox.ssl_context())
    async with aiohttp.ClientSession(
        sandbox.plane.server, connector=connector, headers={"Accept": "application/json"}
    ) as http:
        timeline = Timeline(http, out=out, clock=sandbox.elapsed)
        timeline.say(
            "cluster",
            f"kube-apiserver v1.36.2 at {sandbox.plane.server} (etcd, kube-controller-manager); "
            "CRD installed; the chart's RBAC and webhook; a test kubelet; the operator (a real "
            "process, as the chart's ServiceAccount) running",
        )
        timeline.start()
        try:
            await _round_one(sandbox, timeline, database_url=database_url, problems=problems)
            await _round_two(sandbox, timeline, problems=problems)
            await _metrics(sandbox, timeline, problems=problems)
        finally:
            await timeline.stop()
    return [*problems, *timeline.failures]


async def _kubectl(sandbox: Sandbox, *args: str, stdin: str | None = None) -> str:
    return await asyncio.to_thread(sandbox.kubectl, *args, stdin=stdin)


async def _apply(sandbox: Sandbox, *bodies: dict[str, Any]) -> None:
    """``kubectl apply -f -`` (server-side field validation: a misspelt field is refused)."""
    await _kubectl(sandbox, "apply", "-n", "default", "-f", "-", stdin=yaml.safe_dump_all(bodies))


async def _patch(sandbox: Sandbox, kind: str, name: str, body: dict[str, Any]) -> None:
    patch = json.dumps(body)
    await _kubectl(sandbox, "patch", "-n", "default", kind, name, "--type=merge", "-p", patch)


def _manifest(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load(checkout_file("examples", "sandbox", name).read_text()))


def _migration_manifest(sandbox: Sandbox) -> dict[str, Any]:
    """examples/sandbox/migration.yaml; in container mode with the app image's Alembic folder.

    The example app image keeps its Alembic project in /app/migrations (as
    examples/app/manifests/databasemigration.yaml says); the process-mode kubelet maps any
    working folder of the app "image" to migrations/, so the sandbox's manifest does without.
    """
    body = _manifest("migration.yaml")
    if sandbox.runtime == "podman":
        body["spec"].setdefault("alembic", {})["workingDir"] = "/app/migrations"
    return body


def _migration(timeline: Timeline) -> dict[str, Any]:
    return timeline.objects.get(("migration", MIGRATION), {})


def _deployment(timeline: Timeline) -> dict[str, Any]:
    return timeline.objects.get(("deployment", DEPLOYMENT), {})


def _phase(timeline: Timeline) -> str | None:
    return (_migration(timeline).get("status") or {}).get("phase")


def _held(deployment: dict[str, Any]) -> bool:
    held_by = (deployment.get("metadata", {}).get("annotations") or {}).get(HELD_BY)
    return bool(deployment.get("spec", {}).get("paused")) and held_by == MIGRATION


def _pod_images(timeline: Timeline) -> set[str]:
    """The images of every shop pod the timeline has seen (also those deleted since)."""
    return {
        obj["spec"]["containers"][0]["image"]
        for (kind, _), obj in timeline.objects.items()
        if kind == "pod"
    }


def _available(timeline: Timeline) -> int:
    return int((_deployment(timeline).get("status") or {}).get("availableReplicas") or 0)


async def _round_one(
    sandbox: Sandbox, timeline: Timeline, *, database_url: str, problems: list[str]
) -> None:
    timeline.say("sandbox", "== round 1: kubectl apply examples/sandbox (Secret, migration)")
    secret = _manifest("secret.yaml")
    secret["stringData"]["url"] = database_url
    await _apply(sandbox, secret, _migration_manifest(sandbox))
    # The webhook holds a Deployment whose migration the operator knows: apply it once the
    # operator has picked the migration up (it writes a phase), as a CD pipeline applies in order.
    if not await timeline.wait(
        lambda: _phase(timeline) is not None, within=60, what="the operator to see the migration"
    ):
        problems.append("round 1: the operator never wrote the migration's status")
        return
    timeline.say("sandbox", "kubectl apply examples/sandbox/deployment.yaml")
    await _apply(sandbox, _manifest("deployment.yaml"))
    if not await timeline.wait(
        lambda: _phase(timeline) == "Succeeded",
        within=ROUND_SECONDS,
        what="the migration to succeed",
    ):
        problems.append(f"round 1: the migration ended {_phase(timeline)}, not Succeeded")
        return
    if not _held(timeline.first.get(("deployment", DEPLOYMENT), {})):
        problems.append("round 1: the Deployment was not held from its creation on (webhook)")
    released = await timeline.wait(
        lambda: (
            not _held(_deployment(timeline))
            and not _deployment(timeline).get("spec", {}).get("paused")
        ),
        within=30,
        what="the Deployment to be released",
    )
    if not released:
        problems.append("round 1: the Deployment was not released after the migration succeeded")
        return
    replicas = int(_deployment(timeline)["spec"].get("replicas", 1))
    if await timeline.wait(
        lambda: _available(timeline) >= replicas, within=60, what="the app's pods to be available"
    ):
        timeline.say("sandbox", f"{DEPLOYMENT} serves: {replicas} pod(s) of {APP_IMAGE} running")
    else:
        problems.append(f"round 1: {DEPLOYMENT} has no {replicas} available replicas")


async def _round_two(sandbox: Sandbox, timeline: Timeline, *, problems: list[str]) -> None:
    timeline.say("sandbox", f"== round 2: a new image whose revision {BROKEN_REVISION} is broken")
    await _patch(sandbox, "databasemigration", MIGRATION, {"spec": {"image": BROKEN_IMAGE}})
    await _patch(
        sandbox,
        "deployment",
        DEPLOYMENT,
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": BROKEN_IMAGE}]}}}},
    )
    if not await timeline.wait(
        lambda: _phase(timeline) == "Failed",
        within=ROUND_SECONDS,
        what="the broken migration to fail",
    ):
        problems.append(f"round 2: the migration ended {_phase(timeline)}, not Failed")
        return
    status = _migration(timeline).get("status") or {}
    tail = (status.get("logTail") or "").strip().splitlines()[-6:]
    timeline.say(
        "migration", "log tail of the failed pod:\n" + "\n".join(f"    | {t}" for t in tail)
    )
    if not tail:
        problems.append("round 2: the failed migration has no log tail")
    if not await timeline.wait(
        lambda: _held(_deployment(timeline)), within=30, what="the Deployment to stay held"
    ):
        problems.append("round 2: the Deployment is not held after the migration failed")
    elif BROKEN_IMAGE in _pod_images(timeline):
        problems.append(f"round 2: a pod of {BROKEN_IMAGE} was created although held")
    else:
        timeline.say(
            "sandbox",
            f"the old version keeps serving: {DEPLOYMENT} stays paused, "
            f"{_available(timeline)} pod(s) of {APP_IMAGE}, none of the broken image",
        )


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _counts_the_failure(text: str) -> bool:
    """The exposition shows the failed phase and counts the failure (one update, two series)."""
    return 'phase="Failed"' in text and any(
        line.startswith("alembic_operator_migration_failures_total{") and not line.endswith(" 0.0")
        for line in text.splitlines()
    )


async def _metrics(sandbox: Sandbox, timeline: Timeline, *, problems: list[str]) -> None:
    # The operator counts an outcome right after writing the status the timeline saw: scrape
    # until the exposition has caught up with the failure (a few ms; at most METRICS_SECONDS).
    deadline = time.monotonic() + METRICS_SECONDS
    while True:
        try:
            text = await asyncio.to_thread(_scrape, sandbox.metrics_url)
        except (urllib.error.URLError, OSError) as exc:
            problems.append(f"metrics: {sandbox.metrics_url} not reachable ({exc})")
            return
        if _counts_the_failure(text) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    wanted = (
        "alembic_operator_migrations_total",
        "alembic_operator_migration_failures_total",
        "alembic_operator_migration_info",
        "alembic_operator_deployments_held",
    )
    lines = [line for line in text.splitlines() if line.startswith(wanted)]
    timeline.say("metrics", f"{sandbox.metrics_url}:\n" + "\n".join(f"    {x}" for x in lines))
    if not lines:
        problems.append("metrics: no alembic_operator_ series in the exposition")
    elif not _counts_the_failure(text):
        problems.append(f"metrics: the failure is not counted after {METRICS_SECONDS:g}s")


def default_database_url(workdir: Path) -> str:
    """A fresh SQLite database in the work directory (the previous run's is removed)."""
    path = workdir / "shop.sqlite"
    path.unlink(missing_ok=True)
    return f"sqlite:///{path}"
