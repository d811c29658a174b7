"""The sandbox's timeline: what the operator did, read from the API as a person would see it.

Watches DatabaseMigrations, Deployments, the shop's pods and the operator's Events through the
real apiserver (as the cluster admin) and prints one line per change. Must not: change anything
in the cluster (read-only).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TextIO

import aiohttp

from tests.cluster.sandbox.environments import NS

HELD_BY = "alembic-operator.dev/held-by"
SHOP_PODS = "app.kubernetes.io/name=shop"
WATCHES = {
    "migration": f"/apis/alembic-operator.dev/v1alpha1/namespaces/{NS}/databasemigrations",
    "deployment": f"/apis/apps/v1/namespaces/{NS}/deployments",
    "pod": f"/api/v1/namespaces/{NS}/pods",
    "event": f"/api/v1/namespaces/{NS}/events",
}


class Timeline:
    """Prints changes as they happen; keeps the latest objects for the scenario's checks."""

    def __init__(self, session: aiohttp.ClientSession, *, out: TextIO, clock: Callable[[], float]):
        self._session = session
        self._out = out
        self._clock = clock
        self._seen: dict[tuple[str, str], str] = {}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.first: dict[tuple[str, str], dict[str, Any]] = {}  # as each object was first seen
        self._tasks: list[asyncio.Task[None]] = []
        self.failures: list[str] = []
        self.changed = asyncio.Condition()

    def say(self, kind: str, text: str) -> None:
        self._out.write(f"[{self._clock():6.2f}s] {kind:<10} {text}\n")
        self._out.flush()

    def start(self) -> None:
        for kind, path in WATCHES.items():
            self._tasks.append(asyncio.create_task(self._watch(kind, path)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch(self, kind: str, path: str) -> None:
        params = {"watch": "true", "timeoutSeconds": "3600"}
        if kind == "pod":
            params["labelSelector"] = SHOP_PODS
        try:
            async with self._session.get(path, params=params, timeout=None) as response:
                response.raise_for_status()
                async for line in response.content:
                    if line.strip():
                        event = json.loads(line)
                        await self._show(kind, event["type"], event["object"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken watch must not pass silently
            self.failures.append(f"the {kind} watch failed: {exc!r}")
            self.say("sandbox", f"UNEXPECTED: the {kind} watch failed: {exc!r}")

    async def _show(self, kind: str, change: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self.objects[(kind, name)] = obj
        self.first.setdefault((kind, name), obj)
        if kind == "migration":
            status = obj.get("status") or {}
            line = f"{name}: {status.get('phase', 'New')} — {status.get('message', '')}".rstrip(
                " —"
            )
        elif kind == "deployment":
            held = (obj["metadata"].get("annotations") or {}).get(HELD_BY)
            paused = bool(obj["spec"].get("paused"))
            image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
            line = f"{name}: image {image}, " + (
                f"HELD (paused by migration {held})"
                if held and paused
                else "paused by a person"
                if paused
                else "rolling out (not held)"
            )
            ready = (obj.get("status") or {}).get("readyReplicas") or 0
            line += f", {ready}/{obj['spec'].get('replicas', 1)} replicas ready"
        elif kind == "pod":
            image = obj["spec"]["containers"][0]["image"]
            line = f"{name}: {(obj.get('status') or {}).get('phase', 'Pending')} (image {image})"
        else:
            if (obj.get("source") or {}).get("component") != "alembic-operator":
                return
            target = obj["involvedObject"]
            line = (
                f"{obj['type']:<7} {obj['reason']} on {target['kind']} {target['name']}: "
                f"{obj['message']}"
            )
            name = obj["metadata"]["name"]
        if change != "DELETED" and self._seen.get((kind, name)) != line:
            self._seen[(kind, name)] = line
            self.say(kind, line)
        async with self.changed:
            self.changed.notify_all()

    async def wait(self, predicate: Callable[[], bool], *, within: float, what: str) -> bool:
        """Wait until ``predicate()`` holds after some change; False (and a note) on timeout."""

        async def until() -> None:
            async with self.changed:
                await self.changed.wait_for(predicate)

        try:
            await asyncio.wait_for(until(), timeout=within)
        except TimeoutError:
            self.say("sandbox", f"UNEXPECTED: {what} did not happen within {within:g}s")
            return False
        return True
