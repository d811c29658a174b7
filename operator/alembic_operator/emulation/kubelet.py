"""A local kubelet + Job controller: runs each batch/v1 Job's pod as local processes.

Role: the part of a cluster that the apiserver emulator (:mod:`.apiserver`) does not play. For
every Job it sees, :class:`LocalKubelet` acts as the Job controller (creates the pod, writes
``jobs/status`` with ``active``/``ready``/``failed``/``succeeded``, ``startTime``,
``completionTime`` and the Kubernetes 1.31+ conditions ``SuccessCriteriaMet`` → ``Complete`` or
``FailureTarget`` → ``Failed``; ``podFailurePolicy``, ``backoffLimit``,
``activeDeadlineSeconds``, ``suspend``; and the TTL-after-finished controller for
``ttlSecondsAfterFinished``, deleting in the foreground) and as the kubelet (runs init
containers in order, then the main container, as local processes; writes ``pods/status``
phase Pending → Running → Succeeded/Failed with container states, exit codes and termination
messages).

What it must not do:

- talk to the apiserver other than over HTTP (list/watch, GET, POST, PATCH, DELETE), exactly as
  a real kubelet and controller-manager do: no reaching into the emulator's registry, so the
  operator under test sees the same requests and watch events as on a cluster. The one side
  channel is ``log_sink``: on a real cluster ``pods/log`` is proxied by the apiserver to the
  kubelet, and the emulator has no HTTP endpoint to *write* logs, so the kubelet hands each
  container's output to ``log_sink`` (e.g. ``ApiServer.set_pod_log``) and keeps it in
  :attr:`LocalKubelet.logs`;
- import Alembic or SQLAlchemy (the migrations run in the child processes only);
- leak the host's environment into containers (see :mod:`.pods` for exactly what is inherited).

How a container is run (details in :mod:`.pods`): its image must be a key of ``images`` (exact,
or the reference without its tag/digest) naming an :class:`~.pods.ImageSpec` (a local folder and
a Python interpreter); otherwise the container reports ``ErrImagePull`` and the pod fails (it
never hangs). Each ``emptyDir`` volume is a fresh temporary folder; every occurrence of a mount
path (and of the container's ``terminationMessagePath``, a fresh local file) in ``command``,
``args``, env values and ``workingDir`` is replaced by the local path. Env comes from
``value``, ``secretKeyRef``/``configMapKeyRef``, ``fieldRef`` and ``envFrom``, read over HTTP when
the container starts; a missing Secret or key leaves the container waiting with
``CreateContainerConfigError`` (pod Pending, no process) and is retried until it appears.

Simplifications (documented deviations from a cluster): one pod at a time per Job
(``parallelism``/``completions`` > 1 and Indexed Jobs are not emulated); retries start after
``retry_delay`` (not kubelet's exponential backoff); at ``activeDeadlineSeconds``, on Job
deletion or suspension the running process is terminated (SIGTERM, then SIGKILL after
``min(terminationGracePeriodSeconds, max_grace)``) and the pod is marked ``Failed`` (a pod
terminated by the deadline has reason ``DeadlineExceeded``); pods of a suspended Job are deleted;
a pod deleted while running counts as one failed attempt without evaluating
``podFailurePolicy``; only ``emptyDir`` volumes are supported (any other volume fails the pod).
Deleting a Job with ``propagationPolicy=Background``/``Foreground`` deletes its pods through the
emulator's garbage collector; the apiserver's default for Jobs is ``Orphan`` (the pods stay,
their processes are killed here and marked ``Failed``).

The class is assembled from layers, each in its own module: :mod:`.jobcontrol` (the Job
controller and the TTL-after-finished controller) on :mod:`.podexecution` (a pod's phase) on
:mod:`.containers` (a container's process and state), with :mod:`.runstates` (the state being
built), :mod:`.apiclient` (HTTP), :mod:`.jobstatus` and :mod:`.podfailure` (pure Job logic).
This module keeps the public entry point: construction, :meth:`LocalKubelet.start`/``stop``,
holds, and the informers that feed Jobs and pods to the layers (the pod informer also keeps the
pods by Job uid, which the Job controller reads instead of listing pods per Job).

Usage::

    async with ApiServer() as api, LocalKubelet(api.base_url, images={
        "shop:1": ImageSpec(root=Path("migrations")),
    }, log_sink=api.set_pod_log) as kubelet:
        ...
        release = kubelet.hold("my-job")   # pods of my-job wait (Pending) until release.set()
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from alembic_operator.emulation.apiclient import ApiClient, KubeletApiError
from alembic_operator.emulation.containers import HoldPoint, LogSink
from alembic_operator.emulation.jobcontrol import UID_LABELS, JobController
from alembic_operator.emulation.jobstatus import finished, suspended
from alembic_operator.emulation.podfailure import evaluate_pod_failure_policy
from alembic_operator.emulation.pods import ImageSpec
from alembic_operator.emulation.runstates import (
    ContainerRun,
    JobState,
    PodRun,
    SimulatedContainer,
    SimulatedResult,
    Simulator,
)

__all__ = [
    "ContainerRun",
    "ImageSpec",
    "KubeletApiError",
    "LocalKubelet",
    "SimulatedContainer",
    "SimulatedResult",
    "evaluate_pod_failure_policy",
]


class LocalKubelet(JobController):
    """Run every batch/v1 Job's pod as local processes, talking to the apiserver over HTTP.

    ``images`` maps image references to :class:`~.pods.ImageSpec`; ``namespace`` limits the
    Jobs served (None: all namespaces). Options:

    - ``log_sink(namespace, pod, container, text)``: where container output goes (see the module
      doc; pass ``ApiServer.set_pod_log`` so ``pods/log`` serves it); updated while running;
    - ``pod_start_delay``: seconds a new pod stays Pending before its containers start;
    - ``retry_delay``: seconds between a failed pod and its replacement;
    - ``complete_after``: minimum seconds between a Job's creation and its ``Complete``/``Failed``
      condition (a real controller's sync period makes that about 1 s);
    - ``config_retry_interval``: how often a container blocked on a missing Secret retries;
    - ``max_grace``: cap on ``terminationGracePeriodSeconds`` when killing a process;
    - ``simulate``: when set, no process is started: each container "runs" by calling it (for
      benchmarks: ``simulate=lambda c: SimulatedResult()`` completes at once; images need not be
      mapped);
    - ``workdir``: where pod folders go (default: a temporary folder removed at :meth:`stop`).

    :meth:`hold` gates pods of a Job at a point (before starting, or after the main process
    exited but before its termination is reported) so tests observe intermediate states
    deterministically. :attr:`runs` records every started process.
    """

    def __init__(
        self,
        base_url: str,
        *,
        images: Mapping[str, ImageSpec],
        namespace: str | None = None,
        log_sink: LogSink | None = None,
        pod_start_delay: float = 0.0,
        retry_delay: float = 0.0,
        complete_after: float = 0.0,
        config_retry_interval: float = 0.1,
        max_grace: float = 5.0,
        simulate: Simulator | None = None,
        workdir: Path | None = None,
        node_name: str = "local-kubelet",
    ) -> None:
        self.base_url = base_url
        self.images = dict(images)
        self.namespace = namespace
        self.log_sink = log_sink
        self.pod_start_delay = pod_start_delay
        self.retry_delay = retry_delay
        self.complete_after = complete_after
        self.config_retry_interval = config_retry_interval
        self.max_grace = max_grace
        self.simulate = simulate
        self.node_name = node_name
        self.runs: list[ContainerRun] = []
        self.logs: dict[tuple[str, str, str], str] = {}
        self._workdir = workdir
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._client = ApiClient(base_url)
        self._jobs: dict[str, JobState] = {}
        self._pods: dict[str, PodRun] = {}
        self._job_pods: dict[str, dict[str, dict[str, Any]]] = {}
        self._pods_listed = asyncio.Event()
        self._holds: dict[tuple[str, HoldPoint], asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._ttl_tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start watching Jobs and pods."""
        if self._started:
            return
        self._started, self._stopping = True, False
        self._job_pods, self._pods_listed = {}, asyncio.Event()
        if self._workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="local-kubelet-")
            self._workdir = Path(self._tempdir.name)
        self._workdir.mkdir(parents=True, exist_ok=True)
        await self._client.open()
        self._tasks = [
            asyncio.create_task(
                self._client.inform(
                    self._collection("batch/v1", "jobs"),
                    {},
                    self._on_job,
                    self._on_jobs_listed,
                    self._is_stopping,
                )
            ),
            asyncio.create_task(
                self._client.inform(
                    self._collection("v1", "pods"),
                    {"labelSelector": UID_LABELS[0]},
                    self._on_pod,
                    self._on_pods_listed,
                    self._is_stopping,
                )
            ),
        ]

    async def stop(self) -> None:
        """Kill every running process, stop watching, remove the temporary folders."""
        if not self._started:
            return
        self._stopping = True
        self._pods_listed.set()  # Jobs waiting for the pod informer give up (see _adopt_leftovers)
        for run in list(self._pods.values()):
            run.abort_with("KubeletStopping")
        for state in self._jobs.values():
            state.changed.set()
        for task in [*self._tasks, *self._ttl_tasks.values()]:
            task.cancel()
        workers = [s.task for s in self._jobs.values() if s.task is not None and not s.task.done()]
        if workers:
            _, pending = await asyncio.wait(workers, timeout=self.max_grace + 2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*self._tasks, *self._ttl_tasks.values(), return_exceptions=True)
        self._tasks.clear()
        self._ttl_tasks.clear()
        self._jobs.clear()
        await self._client.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir, self._workdir = None, None
        self._started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def hold(self, job_name: str, *, at: HoldPoint = "start") -> asyncio.Event:
        """Hold pods of ``job_name`` at ``at`` until the returned event is set.

        ``"start"``: the pod exists (Pending) and the Job is active, no container has started.
        ``"exit"``: the main container's process has exited, the pod still reports it running.
        """
        return self._holds.setdefault((job_name, at), asyncio.Event())

    def release(self, job_name: str, *, at: HoldPoint = "start") -> None:
        """Release (and forget) a hold."""
        event = self._holds.pop((job_name, at), None)
        if event is not None:
            event.set()

    # --- watching -------------------------------------------------------------------------------

    def _collection(self, api_version: str, plural: str) -> str:
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if self.namespace is None:
            return f"{prefix}/{plural}"
        return f"{prefix}/namespaces/{self.namespace}/{plural}"

    def _is_stopping(self) -> bool:
        return self._stopping

    def _on_jobs_listed(self, items: list[dict[str, Any]]) -> None:
        seen = set()
        for job in items:
            seen.add(job["metadata"]["uid"])
            self._on_job("ADDED", job)
        for uid, state in list(self._jobs.items()):
            if uid not in seen:
                self._job_gone(state)

    def _on_job(self, kind: str, job: dict[str, Any]) -> None:
        uid = job["metadata"]["uid"]
        state = self._jobs.get(uid)
        if kind == "DELETED" or job["metadata"].get("deletionTimestamp"):
            if state is not None:
                self._job_gone(state)
            ttl = self._ttl_tasks.pop(uid, None)
            if ttl is not None:
                ttl.cancel()
            return
        if finished(job) and uid not in self._ttl_tasks and not self._stopping:
            seconds = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
            if seconds is not None:
                self._ttl_tasks[uid] = asyncio.create_task(self._expire(job, float(seconds)))
        if state is None:
            if finished(job) or self._stopping:
                return
            state = JobState(job=job)
            self._jobs[uid] = state
            state.task = asyncio.create_task(self._run_job(state), name=f"job {state.name}")
            return
        state.job = job
        state.changed.set()
        if suspended(job) and state.current is not None:
            state.current.abort_with("Suspended")

    def _job_gone(self, state: JobState) -> None:
        state.gone = True
        state.changed.set()
        if state.current is not None:
            state.current.abort_with("JobDeleted")
        self._jobs.pop(state.uid, None)

    def _on_pods_listed(self, items: list[dict[str, Any]]) -> None:
        present = {pod["metadata"]["uid"] for pod in items}
        for uid, run in list(self._pods.items()):
            if uid not in present:
                run.abort_with("PodDeleted")
        self._job_pods = {}
        for pod in items:
            self._cache_pod("ADDED", pod)
        self._pods_listed.set()

    def _cache_pod(self, kind: str, pod: dict[str, Any]) -> None:
        """Keep the informer's pods by Job uid (the Job controller's view of its pods)."""
        job_uid = (pod["metadata"].get("labels") or {}).get(UID_LABELS[0])
        if job_uid is None:
            return
        pods = self._job_pods.setdefault(job_uid, {})
        if kind == "DELETED":
            pods.pop(pod["metadata"]["uid"], None)
            if not pods:
                del self._job_pods[job_uid]
        else:
            pods[pod["metadata"]["uid"]] = pod

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        self._cache_pod(kind, pod)
        run = self._pods.get(pod["metadata"]["uid"])
        if run is not None and (kind == "DELETED" or pod["metadata"].get("deletionTimestamp")):
            run.abort_with("PodDeleted")
