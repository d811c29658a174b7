"""A watcher of the test namespace's pods and migrations, started before a change is applied.

It records, for every pod, the first event in which it is bound (``spec.nodeName``) and the first
in which it is Running, with its images; and for every migration the first event in which it is
``Succeeded`` for an image. Events carry etcd's resourceVersion: one etcd serves the whole control
plane, so revisions order events across the pod and migration streams exactly (which receipt
times on two connections would not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from tests.operator.harness import Cluster


@dataclass
class PodRecord:
    name: str
    uid: str
    app: str  # the app.kubernetes.io/name (or migration) label: which round it belongs to
    images: tuple[str, ...]
    seen: int  # resourceVersion of the first event (its creation, for pods created meanwhile)
    bound: int | None = None  # resourceVersion of the first bound event
    running: int | None = None  # resourceVersion of the first Running event


@dataclass
class Watcher:
    cluster: Cluster
    pods: dict[str, PodRecord] = field(default_factory=dict)  # by uid
    # migration name -> image -> resourceVersion of the first Succeeded event for it
    ready: dict[str, dict[str, int]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        for path, on_event in ((self.cluster.PODS, self._pod), (self.cluster.DBM, self._dbm)):
            listed = await self.cluster.client.ok("GET", path)
            for item in listed["items"]:
                on_event(item)
            version = listed["metadata"]["resourceVersion"]
            self._tasks.append(asyncio.create_task(self._watch(path, version, on_event)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self, path: str, version: str, on_event: Any) -> None:
        params = {"watch": "true", "resourceVersion": version, "timeoutSeconds": "600"}
        async with self.cluster.client.session.get(path, params=params) as response:
            assert response.status == 200, await response.text()
            async for line in response.content:
                event = json.loads(line)
                assert event["type"] != "ERROR", event
                on_event(event["object"])

    def _pod(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        labels = meta.get("labels") or {}
        record = self.pods.setdefault(
            meta["uid"],
            PodRecord(
                name=meta["name"],
                uid=meta["uid"],
                app=labels.get("app.kubernetes.io/name") or labels.get("job-name", ""),
                images=tuple(c["image"] for c in spec.get("containers") or ()),
                seen=int(meta["resourceVersion"]),
            ),
        )
        version = int(meta["resourceVersion"])
        if spec.get("nodeName") and record.bound is None:
            record.bound = version
        if (pod.get("status") or {}).get("phase") == "Running" and record.running is None:
            record.running = version

    def _dbm(self, body: dict[str, Any]) -> None:
        status = body.get("status") or {}
        if status.get("phase") != "Succeeded":
            return
        image = (status.get("lastSucceeded") or {}).get("image")
        ready = self.ready.setdefault(body["metadata"]["name"], {})
        ready.setdefault(image, int(body["metadata"]["resourceVersion"]))

    def started(self, app: str, image: str) -> list[PodRecord]:
        """Pods of ``app`` running ``image`` that were ever bound or Running."""
        return [
            p
            for p in self.pods.values()
            if p.app == app and image in p.images and (p.bound or p.running)
        ]

    def early(self, app: str, image: str, migration: str) -> list[PodRecord]:
        """Pods of ``app`` on ``image`` bound or Running before ``migration`` succeeded for it."""
        ready = self.ready.get(migration, {}).get(image)
        return [
            p
            for p in self.started(app, image)
            if ready is None or min(v for v in (p.bound, p.running) if v) < ready
        ]

    def created_before(self, app: str, image: str, migration: str) -> list[PodRecord]:
        """Pods of ``app`` on ``image`` that existed before ``migration`` succeeded for it."""
        ready = self.ready.get(migration, {}).get(image)
        return [
            p
            for p in self.pods.values()
            if p.app == app and image in p.images and (ready is None or p.seen < ready)
        ]
