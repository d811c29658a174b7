"""The local kubelet's in-memory state of a Job being controlled and of a pod being run.

Role: :class:`JobState` (the Job as last seen, its ``status`` being built, its worker task and
current pod) and :class:`PodRun` (a pod's spec, its abort signal and the ``pods/status`` being
built from container states), plus the two writes that publish them,
:func:`write_job_status` and :func:`write_pod_status`, and the signals :class:`Aborted` and
:class:`JobGone` that unwind a pod or a Job. Also the records of what ran, which callers of
:class:`~.kubelet.LocalKubelet` see: :class:`ContainerRun` (in ``LocalKubelet.runs``) and the
``simulate`` callback's :class:`SimulatedContainer` → :class:`SimulatedResult`.

What it must not do: decide anything about a Job's or pod's lifecycle (that is
:mod:`.jobcontrol`, :mod:`.podexecution` and :mod:`.containers`), start processes, or talk to
the apiserver other than through :class:`~.apiclient.ApiClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from alembic_operator.emulation.apiclient import (
    MERGE_PATCH,
    ApiClient,
    KubeletApiError,
    job_path,
    pod_path,
)
from alembic_operator.emulation.jsontree import clone
from alembic_operator.emulation.timestamps import now

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Aborted(Exception):
    """A pod's run was cut short (deleted, suspended, deadline, Job deleted, kubelet stopping)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JobGone(Exception):
    """The Job was deleted: its controller stops."""


@dataclasses.dataclass(frozen=True)
class SimulatedContainer:
    """What a ``simulate`` callback gets instead of a process being started."""

    namespace: str
    job: str
    pod: str
    container: str
    spec: Mapping[str, Any]
    env: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class SimulatedResult:
    """What a simulated container "did": exit code, termination message, log."""

    exit_code: int = 0
    message: str = ""
    log: str = ""


Simulator = Callable[[SimulatedContainer], SimulatedResult]


@dataclasses.dataclass
class ContainerRun:
    """One started process (or simulated container), as recorded in :attr:`LocalKubelet.runs`."""

    namespace: str
    job: str
    pod: str
    container: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    pid: int | None = None
    exit_code: int | None = None


@dataclasses.dataclass(eq=False)
class PodRun:
    """One pod being run: its spec, the abort signal, and the status being built."""

    pod: dict[str, Any]
    job_name: str
    abort: asyncio.Future[str]
    directory: Path
    phase: str = "Pending"
    reason: str | None = None
    message: str | None = None
    init_statuses: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    statuses: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    transitions: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    initialized: bool = False
    ready: bool = False
    start_time: str = dataclasses.field(default_factory=now)
    mounts: dict[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    def abort_with(self, reason: str) -> None:
        if not self.abort.done():
            self.abort.set_result(reason)

    async def race(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` unless the pod is aborted first (then raise :class:`Aborted`)."""
        task = asyncio.ensure_future(awaitable)
        if not self.abort.done():
            waiters: list[asyncio.Future[Any]] = [task, self.abort]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and not self.abort.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise Aborted(self.abort.result())

    def _condition(self, kind: str, value: bool) -> dict[str, Any]:
        text = "True" if value else "False"
        previous = self.transitions.get(kind)
        if previous is None or previous[0] != text:
            self.transitions[kind] = (text, now())
        return {
            "type": kind,
            "status": text,
            "lastProbeTime": None,
            "lastTransitionTime": self.transitions[kind][1],
        }

    def status(self) -> dict[str, Any]:
        ready = self.ready and self.phase == "Running"
        body: dict[str, Any] = {
            "phase": self.phase,
            "conditions": [
                self._condition("PodReadyToStartContainers", True),
                self._condition("Initialized", self.initialized),
                self._condition("Ready", ready),
                self._condition("ContainersReady", ready),
                self._condition("PodScheduled", True),
            ],
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "containerStatuses": clone(self.statuses),
            "qosClass": "BestEffort",
            "reason": self.reason,
            "message": self.message,
        }
        if self.init_statuses:
            body["initContainerStatuses"] = clone(self.init_statuses)
        return body


@dataclasses.dataclass(eq=False)
class JobState:
    """One Job being controlled: the Job as last seen and the status being built."""

    job: dict[str, Any]
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    status: dict[str, Any] = dataclasses.field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    current: PodRun | None = None
    gone: bool = False
    started: float | None = None  # loop time of startTime

    @property
    def namespace(self) -> str:
        return str(self.job["metadata"].get("namespace") or "default")

    @property
    def name(self) -> str:
        return str(self.job["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.job["metadata"]["uid"])


async def write_pod_status(client: ApiClient, run: PodRun) -> None:
    """PATCH ``pods/status`` from ``run``; a 404 aborts the run (the pod was deleted)."""
    try:
        await client.request(
            "PATCH",
            pod_path(run.namespace, run.name) + "/status",
            {"status": run.status()},
            content_type=MERGE_PATCH,
        )
    except KubeletApiError as exc:
        if exc.code == 404:
            run.abort_with("PodDeleted")
        else:
            logger.warning("could not write the status of pod %s: %s", run.name, exc)


async def write_job_status(client: ApiClient, state: JobState) -> None:
    """PATCH ``jobs/status`` from ``state``; raise :class:`JobGone` once the Job is deleted."""
    if state.gone:
        raise JobGone
    status = dict(state.status)
    for counter in ("active", "failed", "succeeded"):
        if not status.get(counter):
            status[counter] = None  # omitted when zero, as the controller does
    try:
        await client.request(
            "PATCH",
            job_path(state.namespace, state.name) + "/status",
            {"status": status},
            content_type=MERGE_PATCH,
        )
    except KubeletApiError as exc:
        if exc.code == 404:
            raise JobGone from exc
        raise
