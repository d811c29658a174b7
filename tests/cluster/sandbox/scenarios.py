"""The sandbox's story: a migration that succeeds and releases its Deployment, then a broken
one that fails, keeps the Deployment held and shows the log tail; then the metrics.

Returns the list of things that did not behave (empty means the sandbox exits 0).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import yaml

from alembic_operator.sandbox.environments import (
    BROKEN_IMAGE,
    BROKEN_REVISION,
    Sandbox,
    checkout_file,
)
from alembic_operator.sandbox.timelines import HELD_BY, NS, WATCHES, Timeline

MERGE = {"Content-Type": "application/merge-patch+json"}
PATHS = {
    "Secret": f"/api/v1/namespaces/{NS}/secrets",
    "Deployment": WATCHES["deployment"],
    "DatabaseMigration": WATCHES["migration"],
}
MIGRATION, DEPLOYMENT = "shop-schema", "shop-web"
ROUND_SECONDS = 120


async def run_scenario(
    sandbox: Sandbox, *, database_url: str, out: TextIO = sys.stdout
) -> list[str]:
    problems: list[str] = []
    async with aiohttp.ClientSession(sandbox.api.base_url) as http:
        timeline = Timeline(http, out=out, clock=sandbox.elapsed)
        timeline.say(
            "cluster",
            f"apiserver emulator at {sandbox.api.base_url}; CRD installed; "
            "local kubelet and the operator (a real process) running",
        )
        timeline.start()
        try:
            await _round_one(http, timeline, database_url=database_url, problems=problems)
            await _round_two(http, timeline, problems=problems)
            await _metrics(http, sandbox, timeline, problems=problems)
        finally:
            await timeline.stop()
    return problems


async def _apply(http: aiohttp.ClientSession, body: dict[str, Any]) -> None:
    async with http.post(PATHS[body["kind"]], json=body) as response:
        if response.status >= 300:
            raise RuntimeError(
                f"applying {body['kind']}: {response.status} {await response.text()}"
            )


async def _patch(http: aiohttp.ClientSession, kind: str, name: str, body: dict[str, Any]) -> None:
    async with http.patch(f"{PATHS[kind]}/{name}", json=body, headers=MERGE) as response:
        if response.status >= 300:
            raise RuntimeError(f"patching {kind} {name}: {response.status} {await response.text()}")


def _manifest(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load(checkout_file("examples", "sandbox", name).read_text()))


def _migration(timeline: Timeline) -> dict[str, Any]:
    return timeline.objects.get(("migration", MIGRATION), {})


def _deployment(timeline: Timeline) -> dict[str, Any]:
    return timeline.objects.get(("deployment", DEPLOYMENT), {})


def _phase(timeline: Timeline) -> str | None:
    return (_migration(timeline).get("status") or {}).get("phase")


def _held(timeline: Timeline) -> bool:
    deployment = _deployment(timeline)
    held_by = (deployment.get("metadata", {}).get("annotations") or {}).get(HELD_BY)
    return bool(deployment.get("spec", {}).get("paused")) and held_by == MIGRATION


async def _round_one(
    http: aiohttp.ClientSession, timeline: Timeline, *, database_url: str, problems: list[str]
) -> None:
    timeline.say("sandbox", "== round 1: apply examples/sandbox (Secret, Deployment, migration)")
    secret = _manifest("secret.yaml")
    secret["stringData"]["url"] = database_url
    for body in (secret, _manifest("deployment.yaml"), _manifest("migration.yaml")):
        await _apply(http, body)
    if not await timeline.wait(
        lambda: _phase(timeline) == "Succeeded",
        within=ROUND_SECONDS,
        what="the migration to succeed",
    ):
        problems.append(f"round 1: the migration ended {_phase(timeline)}, not Succeeded")
        return
    released = await timeline.wait(
        lambda: not _held(timeline) and not _deployment(timeline).get("spec", {}).get("paused"),
        within=30,
        what="the Deployment to be released",
    )
    if not released:
        problems.append("round 1: the Deployment was not released after the migration succeeded")


async def _round_two(
    http: aiohttp.ClientSession, timeline: Timeline, *, problems: list[str]
) -> None:
    timeline.say("sandbox", f"== round 2: a new image whose revision {BROKEN_REVISION} is broken")
    await _patch(http, "DatabaseMigration", MIGRATION, {"spec": {"image": BROKEN_IMAGE}})
    await _patch(
        http,
        "Deployment",
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
        lambda: _held(timeline), within=30, what="the Deployment to stay held"
    ):
        problems.append("round 2: the Deployment is not held after the migration failed")
    else:
        timeline.say("sandbox", f"the old version keeps serving: {DEPLOYMENT} stays paused")


async def _metrics(
    http: aiohttp.ClientSession, sandbox: Sandbox, timeline: Timeline, *, problems: list[str]
) -> None:
    try:
        async with http.get(sandbox.metrics_url) as response:
            text = await response.text()
    except aiohttp.ClientError as exc:
        problems.append(f"metrics: {sandbox.metrics_url} not reachable ({exc})")
        return
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


def default_database_url(workdir: Path) -> str:
    """A fresh SQLite database in the work directory (the previous run's is removed)."""
    path = workdir / "shop.sqlite"
    path.unlink(missing_ok=True)
    return f"sqlite:///{path}"
