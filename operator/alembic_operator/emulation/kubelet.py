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

Usage::

    async with ApiServer() as api, LocalKubelet(api.base_url, images={
        "shop:1": ImageSpec(root=Path("migrations")),
    }, log_sink=api.set_pod_log) as kubelet:
        ...
        release = kubelet.hold("my-job")   # pods of my-job wait (Pending) until release.set()
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import aiohttp

from alembic_operator.emulation.pods import (
    DEFAULT_TERMINATION_PATH,
    ConfigError,
    ImageSpec,
    PathRewriter,
    StartError,
    base_environment,
    build_argv,
    decode_data,
    exit_code_of,
    read_termination_message,
    resolve_env,
    start_process,
    stop_process,
    working_directory,
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

logger = logging.getLogger(__name__)

T = TypeVar("T")
USER_AGENT = "alembic-operator-local-kubelet/0.1"
MERGE_PATCH = "application/merge-patch+json"
UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
_RETRYABLE = frozenset({429, 500, 502, 503, 504})
_SUCCESS_REASON = "CompletionsReached"
_SUCCESS_MESSAGE = "Reached expected number of succeeded pods"
_DEADLINE_MESSAGE = "Job was active longer than specified deadline"
_BACKOFF_MESSAGE = "Job has reached the specified backoff limit"

LogSink = Callable[[str, str, str, str], None]  # (namespace, pod, container, text)
HoldPoint = Literal["start", "exit"]


class KubeletApiError(Exception):
    """The apiserver answered an error (after retries for 429/5xx)."""

    def __init__(self, code: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)[:200]
        super().__init__(f"{code}: {message}")
        self.code = code
        self.body = body


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


class _Aborted(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _JobGone(Exception):
    pass


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


def _condition_true(status: Mapping[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or []
    )


def _read_text(path: Path) -> str:
    return path.read_text(errors="replace")


def _finished(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    return _condition_true(status, "Complete") or _condition_true(status, "Failed")


def _suspended(job: Mapping[str, Any]) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def set_condition(status: dict[str, Any], kind: str, value: str, reason: str, message: str) -> None:
    """Add or update a Job condition; ``lastTransitionTime`` moves only when the status flips."""
    now = _now()
    conditions: list[dict[str, Any]] = status.setdefault("conditions", []) or []
    status["conditions"] = conditions
    for condition in conditions:
        if condition.get("type") == kind:
            if condition.get("status") != value:
                condition["lastTransitionTime"] = now
            condition.update(status=value, reason=reason, message=message, lastProbeTime=now)
            return
    conditions.append(
        {
            "type": kind,
            "status": value,
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }
    )


def evaluate_pod_failure_policy(
    policy: Mapping[str, Any] | None, pod: Mapping[str, Any]
) -> tuple[str, str | None]:
    """The action (``FailJob``, ``Ignore``, ``Count``, ...) for a failed pod, and its message.

    As the Job controller does: rules in order, the first match wins; ``onExitCodes`` looks at
    terminated containers (regular ones first, then init containers) with a non-zero exit code,
    filtered by ``containerName``; ``onPodConditions`` at the pod's conditions. No match: Count.
    """
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    for index, rule in enumerate((policy or {}).get("rules") or []):
        action = str(rule.get("action"))
        codes = rule.get("onExitCodes")
        if codes is not None:
            values = set(codes.get("values") or [])
            for kind in ("containerStatuses", "initContainerStatuses"):
                for container in status.get(kind) or []:
                    terminated = (container.get("state") or {}).get("terminated")
                    if not terminated or terminated.get("exitCode", 0) == 0:
                        continue
                    if codes.get("containerName") not in (None, container.get("name")):
                        continue
                    code = int(terminated["exitCode"])
                    if (code in values) == (codes.get("operator") == "In"):
                        return action, (
                            f"Container {container.get('name')} for pod {where} failed with exit "
                            f"code {code} matching {action} rule at index {index}"
                        )
        for pattern in rule.get("onPodConditions") or []:
            for condition in status.get("conditions") or []:
                if condition.get("type") == pattern.get("type") and condition.get(
                    "status"
                ) == pattern.get("status", "True"):
                    return action, (
                        f"Pod {where} has condition {condition.get('type')} matching {action} "
                        f"rule at index {index}"
                    )
    return "Count", None


class _Client:
    """JSON over HTTP with retries on 429/5xx and connection errors."""

    def __init__(self, base_url: str, retries: int = 8) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Any:
        assert self.session is not None, "the kubelet is not started"
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        last: Exception | None = None
        for attempt in range(self.retries):
            try:
                async with self.session.request(
                    method,
                    self.base_url + path,
                    data=data,
                    headers=headers,
                    params=params,
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as response:
                    text = await response.text()
                    try:
                        answer = json.loads(text) if text else None
                    except ValueError:
                        answer = text
                    if response.status < 400:
                        return answer
                    last = KubeletApiError(response.status, answer)
                    if response.status not in _RETRYABLE:
                        raise last
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = exc
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        assert last is not None
        raise last

    async def watch(
        self, path: str, resource_version: str, params: Mapping[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        assert self.session is not None, "the kubelet is not started"
        query = {
            **params,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        async with self.session.get(self.base_url + path, params=query) as response:
            if response.status != 200:
                raise KubeletApiError(response.status, await response.text())
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)


@dataclasses.dataclass(eq=False)
class _PodRun:
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
    start_time: str = dataclasses.field(default_factory=_now)
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
        """Await ``awaitable`` unless the pod is aborted first (then raise :class:`_Aborted`)."""
        task = asyncio.ensure_future(awaitable)
        if not self.abort.done():
            waiters: list[asyncio.Future[Any]] = [task, self.abort]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and not self.abort.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise _Aborted(self.abort.result())

    def _condition(self, kind: str, value: bool) -> dict[str, Any]:
        text = "True" if value else "False"
        previous = self.transitions.get(kind)
        if previous is None or previous[0] != text:
            self.transitions[kind] = (text, _now())
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
            "containerStatuses": copy.deepcopy(self.statuses),
            "qosClass": "BestEffort",
            "reason": self.reason,
            "message": self.message,
        }
        if self.init_statuses:
            body["initContainerStatuses"] = copy.deepcopy(self.init_statuses)
        return body


@dataclasses.dataclass(eq=False)
class _JobState:
    job: dict[str, Any]
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    status: dict[str, Any] = dataclasses.field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    current: _PodRun | None = None
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


class LocalKubelet:
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
        self._client = _Client(base_url)
        self._jobs: dict[str, _JobState] = {}
        self._pods: dict[str, _PodRun] = {}
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
        if self._workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="local-kubelet-")
            self._workdir = Path(self._tempdir.name)
        self._workdir.mkdir(parents=True, exist_ok=True)
        await self._client.open()
        self._tasks = [
            asyncio.create_task(
                self._informer(
                    self._collection("batch/v1", "jobs"), {}, self._on_job, self._on_jobs_listed
                )
            ),
            asyncio.create_task(
                self._informer(
                    self._collection("v1", "pods"),
                    {"labelSelector": UID_LABELS[0]},
                    self._on_pod,
                    self._on_pods_listed,
                )
            ),
        ]

    async def stop(self) -> None:
        """Kill every running process, stop watching, remove the temporary folders."""
        if not self._started:
            return
        self._stopping = True
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

    async def _informer(
        self,
        path: str,
        params: Mapping[str, str],
        on_event: Callable[[str, dict[str, Any]], None],
        on_listed: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        """List, then watch from the list's resourceVersion; relist on 410 Gone."""
        resource_version: str | None = None
        while not self._stopping:
            try:
                if resource_version is None:
                    listing = await self._client.request("GET", path, params=params)
                    resource_version = str(listing["metadata"]["resourceVersion"])
                    on_listed(list(listing.get("items") or []))
                async for event in self._client.watch(path, resource_version, params):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            resource_version = None
                        break
                    resource_version = str(
                        (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                    )
                    if event.get("type") != "BOOKMARK":
                        on_event(str(event.get("type")), obj)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._stopping:
                    logger.debug("watch of %s interrupted: %s", path, exc)
                    await asyncio.sleep(0.1)

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
        if _finished(job) and uid not in self._ttl_tasks and not self._stopping:
            seconds = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
            if seconds is not None:
                self._ttl_tasks[uid] = asyncio.create_task(self._expire(job, float(seconds)))
        if state is None:
            if _finished(job) or self._stopping:
                return
            state = _JobState(job=job)
            self._jobs[uid] = state
            state.task = asyncio.create_task(self._run_job(state), name=f"job {state.name}")
            return
        state.job = job
        state.changed.set()
        if _suspended(job) and state.current is not None:
            state.current.abort_with("Suspended")

    async def _expire(self, job: dict[str, Any], seconds: float) -> None:
        """The TTL-after-finished controller: delete a finished Job (foreground) after its TTL."""
        status = job.get("status") or {}
        finished = status.get("completionTime") or next(
            (c.get("lastTransitionTime") for c in status.get("conditions") or []
             if c.get("type") in {"Complete", "Failed"} and c.get("status") == "True"),
            None,
        )  # fmt: skip
        at = _parse_time(finished) or datetime.datetime.now(datetime.UTC)
        delay = (at - datetime.datetime.now(datetime.UTC)).total_seconds() + seconds
        if delay > 0:
            await asyncio.sleep(delay)
        meta = job["metadata"]
        path = f"/apis/batch/v1/namespaces/{meta.get('namespace')}/jobs/{meta['name']}"
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground",
                   "preconditions": {"uid": meta["uid"]}}  # fmt: skip
        try:
            await self._client.request("DELETE", path, options)
        except KubeletApiError as exc:
            if exc.code not in {404, 409}:
                logger.warning("could not delete the expired Job %s: %s", meta["name"], exc)

    def _job_gone(self, state: _JobState) -> None:
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

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        run = self._pods.get(pod["metadata"]["uid"])
        if run is not None and (kind == "DELETED" or pod["metadata"].get("deletionTimestamp")):
            run.abort_with("PodDeleted")

    # --- the Job controller ---------------------------------------------------------------------

    def _job_path(self, state: _JobState) -> str:
        return f"/apis/batch/v1/namespaces/{state.namespace}/jobs/{state.name}"

    def _pod_path(self, namespace: str, name: str) -> str:
        return f"/api/v1/namespaces/{namespace}/pods/{name}"

    async def _run_job(self, state: _JobState) -> None:
        try:
            await self._job_loop(state)
        except _JobGone:
            logger.debug("job %s/%s is gone", state.namespace, state.name)
        except asyncio.CancelledError:
            raise
        except Exception:
            if not self._stopping:
                logger.exception("the local Job controller failed on %s", state.name)

    async def _write_job_status(self, state: _JobState) -> None:
        if state.gone:
            raise _JobGone
        status = dict(state.status)
        for counter in ("active", "failed", "succeeded"):
            if not status.get(counter):
                status[counter] = None  # omitted when zero, as the controller does
        try:
            await self._client.request(
                "PATCH",
                self._job_path(state) + "/status",
                {"status": status},
                content_type=MERGE_PATCH,
            )
        except KubeletApiError as exc:
            if exc.code == 404:
                raise _JobGone from exc
            raise

    async def _job_loop(self, state: _JobState) -> None:
        loop = asyncio.get_running_loop()
        state.status = copy.deepcopy(state.job.get("status") or {})
        if await self._adopt_leftovers(state):
            return
        while not state.gone and not self._stopping:
            if _suspended(state.job):
                await self._suspend(state)
                continue
            status = state.status
            started = self._start_clock(state)
            deadline_seconds = (state.job.get("spec") or {}).get("activeDeadlineSeconds")
            deadline = None if deadline_seconds is None else started + deadline_seconds
            if deadline is not None and loop.time() >= deadline:
                await self._fail(state, "DeadlineExceeded", _DEADLINE_MESSAGE)
                return
            run = await self._create_pod(state)
            status.update(active=1, ready=0, terminating=0)
            await self._write_job_status(state)
            await self._run_pod(state, run, deadline)
            status.update(active=0, ready=0)
            aborted = run.abort.result() if run.abort.done() else None
            if aborted in {"JobDeleted", "KubeletStopping"} or state.gone:
                return
            if aborted == "DeadlineExceeded":
                status["failed"] = int(status.get("failed") or 0) + 1
                await self._fail(state, "DeadlineExceeded", _DEADLINE_MESSAGE)
                return
            if aborted == "Suspended":
                await self._delete_pod(run)
                continue
            if run.phase == "Succeeded":
                await self._succeed(state)
                return
            if await self._after_failure(state, run, aborted):
                return
            await self._write_job_status(state)
            if self.retry_delay:
                await asyncio.sleep(self.retry_delay)

    def _start_clock(self, state: _JobState) -> float:
        """Set ``startTime`` if unset (reset on resume); the loop time it stands for."""
        loop = asyncio.get_running_loop()
        status = state.status
        if _condition_true(status, "Suspended"):
            set_condition(status, "Suspended", "False", "JobResumed", "Job resumed")
            status["startTime"] = None
        if not status.get("startTime"):
            status["startTime"] = _now()
            state.started = loop.time()
        elif state.started is None:
            started = _parse_time(status["startTime"]) or datetime.datetime.now(datetime.UTC)
            elapsed = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
            state.started = loop.time() - max(elapsed, 0.0)
        return state.started

    async def _after_failure(self, state: _JobState, run: _PodRun, aborted: str | None) -> bool:
        """Apply podFailurePolicy and backoffLimit to a failed pod; True when the Job failed."""
        status = state.status
        action, message = ("Count", None)
        if aborted is None:  # a pod deleted while running counts, without policy evaluation
            pod = {"metadata": run.pod["metadata"], "status": run.status()}
            policy = (state.job.get("spec") or {}).get("podFailurePolicy")
            action, message = evaluate_pod_failure_policy(policy, pod)
        if action == "Ignore":
            return False
        status["failed"] = int(status.get("failed") or 0) + 1
        if action == "FailJob":
            await self._fail(state, "PodFailurePolicy", message or "")
            return True
        backoff_limit = int((state.job.get("spec") or {}).get("backoffLimit", 6))
        if status["failed"] > backoff_limit:
            await self._fail(state, "BackoffLimitExceeded", _BACKOFF_MESSAGE)
            return True
        return False

    async def _adopt_leftovers(self, state: _JobState) -> bool:
        """Pods of this Job from an earlier kubelet: a success ends the Job; a pod that was
        running has lost its process and counts as failed. True when the Job is finished."""
        pods = await self._client.request(
            "GET",
            f"/api/v1/namespaces/{state.namespace}/pods",
            params={"labelSelector": f"{UID_LABELS[0]}={state.uid}"},
        )
        lost = 0
        for pod in pods.get("items") or []:
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Succeeded":
                await self._succeed(state)
                return True
            if phase in {"Pending", "Running"} and pod["metadata"]["uid"] not in self._pods:
                lost += 1
                body = {
                    "status": {
                        "phase": "Failed",
                        "reason": "NodeLost",
                        "message": "the local kubelet restarted; the process was lost",
                    }
                }
                with contextlib.suppress(KubeletApiError):
                    await self._client.request(
                        "PATCH",
                        self._pod_path(state.namespace, pod["metadata"]["name"]) + "/status",
                        body,
                        content_type=MERGE_PATCH,
                    )
        if lost:
            state.status["failed"] = int(state.status.get("failed") or 0) + lost
            state.status.update(active=0, ready=0)
            if state.status["failed"] > int((state.job.get("spec") or {}).get("backoffLimit", 6)):
                await self._fail(state, "BackoffLimitExceeded", _BACKOFF_MESSAGE)
                return True
            await self._write_job_status(state)
        return False

    async def _suspend(self, state: _JobState) -> None:
        status = state.status
        if not _condition_true(status, "Suspended"):
            set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended")
            status.update(active=0, ready=0)
            await self._write_job_status(state)
        while True:
            state.changed.clear()
            if state.gone or self._stopping or not _suspended(state.job):
                return
            await state.changed.wait()

    async def _hold_terminal(self, state: _JobState) -> None:
        created = _parse_time(state.job["metadata"].get("creationTimestamp"))
        if not self.complete_after or created is None:
            return
        elapsed = (datetime.datetime.now(datetime.UTC) - created).total_seconds()
        if elapsed < self.complete_after:
            await asyncio.sleep(self.complete_after - elapsed)

    async def _succeed(self, state: _JobState) -> None:
        status = state.status
        status.update(active=0, ready=0, terminating=0, succeeded=1)
        status.setdefault("uncountedTerminatedPods", {})
        set_condition(status, "SuccessCriteriaMet", "True", _SUCCESS_REASON, _SUCCESS_MESSAGE)
        await self._write_job_status(state)
        await self._hold_terminal(state)
        status["completionTime"] = _now()
        set_condition(status, "Complete", "True", _SUCCESS_REASON, _SUCCESS_MESSAGE)
        await self._write_job_status(state)

    async def _fail(self, state: _JobState, reason: str, message: str) -> None:
        status = state.status
        status.update(active=0, ready=0, terminating=0)
        status.setdefault("uncountedTerminatedPods", {})
        set_condition(status, "FailureTarget", "True", reason, message)
        await self._write_job_status(state)
        await self._hold_terminal(state)
        set_condition(status, "Failed", "True", reason, message)
        await self._write_job_status(state)

    async def _create_pod(self, state: _JobState) -> _PodRun:
        template = copy.deepcopy((state.job.get("spec") or {}).get("template") or {})
        meta = template.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        for label in UID_LABELS:
            labels.setdefault(label, state.uid)
        for label in NAME_LABELS:
            labels.setdefault(label, state.name)
        spec = template.get("spec") or {}
        spec["nodeName"] = self.node_name
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{state.name}-",
                "namespace": state.namespace,
                "labels": labels,
                "annotations": dict(meta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": state.name,
                        "uid": state.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
        }
        if not body["metadata"]["annotations"]:
            del body["metadata"]["annotations"]
        try:
            pod = await self._client.request(
                "POST", f"/api/v1/namespaces/{state.namespace}/pods", body
            )
        except KubeletApiError as exc:
            if exc.code == 404:
                raise _JobGone from exc
            raise
        assert self._workdir is not None
        directory = self._workdir / f"{pod['metadata']['namespace']}_{pod['metadata']['name']}"
        run = _PodRun(
            pod=pod,
            job_name=state.name,
            abort=asyncio.get_running_loop().create_future(),
            directory=directory,
        )
        self._pods[run.uid] = run
        return run

    async def _delete_pod(self, run: _PodRun) -> None:
        with contextlib.suppress(KubeletApiError):
            await self._client.request("DELETE", self._pod_path(run.namespace, run.name))

    # --- the kubelet ----------------------------------------------------------------------------

    async def _write_pod_status(self, run: _PodRun) -> None:
        try:
            await self._client.request(
                "PATCH",
                self._pod_path(run.namespace, run.name) + "/status",
                {"status": run.status()},
                content_type=MERGE_PATCH,
            )
        except KubeletApiError as exc:
            if exc.code == 404:
                run.abort_with("PodDeleted")
            else:
                logger.warning("could not write the status of pod %s: %s", run.name, exc)

    async def _run_pod(self, state: _JobState, run: _PodRun, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        state.current = run
        if state.gone:
            run.abort_with("JobDeleted")
        elif _suspended(state.job):
            run.abort_with("Suspended")
        timer = (
            None if deadline is None else loop.call_at(deadline, run.abort_with, "DeadlineExceeded")
        )
        try:
            await self._execute(state, run)
        except _Aborted as exc:
            await self._report_aborted(run, exc.reason)
        finally:
            if timer is not None:
                timer.cancel()
            state.current = None
            self._pods.pop(run.uid, None)
            shutil.rmtree(run.directory, ignore_errors=True)

    async def _report_aborted(self, run: _PodRun, reason: str) -> None:
        if reason in {"PodDeleted", "KubeletStopping"}:
            return
        run.phase, run.ready = "Failed", False
        if reason == "DeadlineExceeded":
            run.reason = "DeadlineExceeded"
            run.message = "Pod was active on the node longer than the specified deadline"
        await self._write_pod_status(run)

    def _image(self, reference: str) -> ImageSpec | None:
        if reference in self.images:
            return self.images[reference]
        bare = reference.split("@", 1)[0]
        if ":" in bare.rsplit("/", 1)[-1]:
            bare = bare.rsplit(":", 1)[0]
        return self.images.get(bare)

    @staticmethod
    def _initial_status(container: Mapping[str, Any], reason: str) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container.get("image"),
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {"waiting": {"reason": reason}},
            "lastState": {},
        }

    async def _execute(self, state: _JobState, run: _PodRun) -> None:
        spec = run.pod.get("spec") or {}
        inits, mains = spec.get("initContainers") or [], spec.get("containers") or []
        run.init_statuses = [self._initial_status(c, "PodInitializing") for c in inits]
        waiting = "PodInitializing" if inits else "ContainerCreating"
        run.statuses = [self._initial_status(c, waiting) for c in mains]
        run.initialized = not inits
        await self._write_pod_status(run)
        gate = self._holds.get((state.name, "start"))
        if gate is not None:
            await run.race(gate.wait())
        if self.pod_start_delay:
            await run.race(asyncio.sleep(self.pod_start_delay))
        if self.simulate is None and not await self._pull_images(run, inits, mains):
            return
        if not await self._make_volumes(run, spec):
            return
        for index, container in enumerate(inits):
            if await self._run_container(state, run, container, index, init=True) != 0:
                run.phase = "Failed"
                await self._write_pod_status(run)
                return
        run.initialized = True
        results = await asyncio.gather(
            *(self._run_container(state, run, c, i, init=False) for i, c in enumerate(mains)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        run.phase = "Succeeded" if all(code == 0 for code in results) else "Failed"
        run.ready = False
        await self._write_pod_status(run)

    async def _pull_images(
        self, run: _PodRun, inits: list[dict[str, Any]], mains: list[dict[str, Any]]
    ) -> bool:
        for containers, statuses in ((inits, run.init_statuses), (mains, run.statuses)):
            for container, status in zip(containers, statuses, strict=True):
                if self._image(str(container.get("image"))) is not None:
                    continue
                message = (
                    f'image "{container.get("image")}" is not mapped to a local folder '
                    "(LocalKubelet images)"
                )
                status["state"] = {"waiting": {"reason": "ErrImagePull", "message": message}}
                await self._write_pod_status(run)
                status["state"] = {
                    "terminated": {
                        "exitCode": 128,
                        "reason": "ErrImagePull",
                        "message": message,
                        "startedAt": None,
                        "finishedAt": _now(),
                    }
                }
                run.phase, run.reason, run.message = "Failed", "ErrImagePull", message
                await self._write_pod_status(run)
                return False
        return True

    async def _make_volumes(self, run: _PodRun, spec: Mapping[str, Any]) -> bool:
        for volume in spec.get("volumes") or []:
            if "emptyDir" not in volume:
                kinds = sorted(k for k in volume if k != "name")
                run.phase, run.reason = "Failed", "UnsupportedVolume"
                run.message = (
                    f"volume {volume.get('name')!r}: only emptyDir is emulated, not {kinds}"
                )
                await self._write_pod_status(run)
                return False
            local = run.directory / "volumes" / str(volume["name"])
            local.mkdir(parents=True, exist_ok=True)
            run.mounts[str(volume["name"])] = local
        (run.directory / "termination").mkdir(parents=True, exist_ok=True)
        (run.directory / "logs").mkdir(parents=True, exist_ok=True)
        return True

    async def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        plural = {"Secret": "secrets", "ConfigMap": "configmaps"}[kind]
        try:
            obj = await self._client.request(
                "GET", f"/api/v1/namespaces/{namespace}/{plural}/{name}"
            )
        except KubeletApiError as exc:
            if exc.code == 404:
                return None
            raise
        return decode_data(kind, obj)

    def _push_log(self, run: _PodRun, container: str, text: str) -> None:
        key = (run.namespace, run.name, container)
        if self.logs.get(key) == text:
            return
        self.logs[key] = text
        if self.log_sink is not None:
            try:
                self.log_sink(run.namespace, run.name, container, text)
            except Exception:
                logger.exception("the log sink failed for %s/%s", run.name, container)

    async def _pump_log(self, run: _PodRun, container: str, path: Path) -> None:
        while True:
            await asyncio.sleep(0.2)
            with contextlib.suppress(OSError):
                self._push_log(run, container, _read_text(path))

    async def _resolve_env(
        self, run: _PodRun, container: Mapping[str, Any], status: dict[str, Any]
    ) -> dict[str, str]:
        while True:
            try:
                return await resolve_env(container, run.pod, self._lookup)
            except ConfigError as exc:
                waiting = {"waiting": {"reason": exc.reason, "message": str(exc)}}
                if status["state"] != waiting:
                    status["state"] = waiting
                    await self._write_pod_status(run)
                await run.race(asyncio.sleep(self.config_retry_interval))

    async def _run_container(
        self,
        state: _JobState,
        run: _PodRun,
        container: Mapping[str, Any],
        index: int,
        *,
        init: bool,
    ) -> int:
        name = str(container["name"])
        status = (run.init_statuses if init else run.statuses)[index]
        own_env = await self._resolve_env(run, container, status)
        termination = run.directory / "termination" / f"{'init-' if init else ''}{name}"
        termination.touch()
        mapping = {
            str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH): str(
                termination
            )
        }
        for mount in container.get("volumeMounts") or []:
            local = run.mounts.get(str(mount.get("name")))
            if local is not None:
                target = local / str(mount["subPath"]) if mount.get("subPath") else local
                target.mkdir(parents=True, exist_ok=True)
                mapping[str(mount["mountPath"])] = str(target)
        rewriter = PathRewriter(mapping)
        image = self._image(str(container.get("image")))
        tmp = rewriter.local_dir("/tmp") if "/tmp" in rewriter.mapping else None  # noqa: S108
        env = base_environment(run.name, tmp)
        env.update(image.env if image is not None else {})
        env.update({key: rewriter.rewrite(value) for key, value in own_env.items()})
        started_at = _now()
        log_path = run.directory / "logs" / f"{'init-' if init else ''}{name}.log"
        if self.simulate is not None:
            code = await self._simulate(state, run, container, env, status, init=init)
        else:
            assert image is not None
            try:
                argv = build_argv(container, image, env, rewriter)
                cwd = working_directory(container, image, rewriter)
                process = await start_process(argv, cwd, env, log_path)
            except StartError as exc:
                status["state"] = {
                    "terminated": {
                        "exitCode": 128,
                        "reason": exc.reason,
                        "message": str(exc),
                        "startedAt": started_at,
                        "finishedAt": _now(),
                    }
                }
                await self._write_pod_status(run)
                return 128
            record = ContainerRun(
                run.namespace, state.name, run.name, name, argv, str(cwd), env, process.pid
            )
            self.runs.append(record)
            try:
                code = await self._supervise(
                    state,
                    run,
                    process=process,
                    status=status,
                    started_at=started_at,
                    log_path=log_path,
                    termination=termination,
                    container=container,
                    record=record,
                    init=init,
                )
            finally:
                if process.returncode is not None:
                    record.exit_code = exit_code_of(process.returncode)
        return code

    async def _mark_running(
        self, state: _JobState, run: _PodRun, status: dict[str, Any], started_at: str, *, init: bool
    ) -> None:
        status.update(
            state={"running": {"startedAt": started_at}},
            started=True,
            containerID=f"local://{run.uid}/{status['name']}",
        )
        if not init:
            status["ready"] = True
            run.phase = "Running"
            run.ready = all(s.get("ready") for s in run.statuses)
        await self._write_pod_status(run)
        if run.ready and not init and not state.gone:
            state.status["ready"] = 1
            with contextlib.suppress(_JobGone, KubeletApiError):
                await self._write_job_status(state)

    def _terminated(self, status: dict[str, Any], code: int, message: str, started_at: str) -> None:
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started_at,
            "finishedAt": _now(),
            "containerID": status.get("containerID"),
        }
        if message:
            terminated["message"] = message
        status.update(state={"terminated": terminated}, ready=False, started=False)

    async def _supervise(
        self,
        state: _JobState,
        run: _PodRun,
        *,
        process: asyncio.subprocess.Process,
        status: dict[str, Any],
        started_at: str,
        log_path: Path,
        termination: Path,
        container: Mapping[str, Any],
        record: ContainerRun,
        init: bool,
    ) -> int:
        name = str(container["name"])
        policy = str(container.get("terminationMessagePolicy") or "File")
        pump = asyncio.create_task(self._pump_log(run, name, log_path))
        try:
            await self._mark_running(state, run, status, started_at, init=init)
            try:
                code = record.exit_code = await run.race(self._wait(process))
                gate = None if init else self._holds.get((state.name, "exit"))
                if gate is not None:
                    await run.race(gate.wait())
            except _Aborted:
                grace = float((run.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
                code = await stop_process(process, min(grace, self.max_grace))
                message = read_termination_message(termination, policy, code, log_path)
                self._terminated(status, code, message, started_at)
                raise
            message = read_termination_message(termination, policy, code, log_path)
            self._terminated(status, code, message, started_at)
            self._push_log(run, name, _read_text(log_path))
            await self._write_pod_status(run)
            return code
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            with contextlib.suppress(OSError):
                self._push_log(run, name, _read_text(log_path))
            if process.returncode is None:  # cancelled: never leave a process behind
                with contextlib.suppress(ProcessLookupError):
                    process.kill()

    @staticmethod
    async def _wait(process: asyncio.subprocess.Process) -> int:
        return exit_code_of(await process.wait())

    async def _simulate(
        self,
        state: _JobState,
        run: _PodRun,
        container: Mapping[str, Any],
        env: dict[str, str],
        status: dict[str, Any],
        *,
        init: bool,
    ) -> int:
        assert self.simulate is not None
        name = str(container["name"])
        started_at = _now()
        self.runs.append(ContainerRun(run.namespace, state.name, run.name, name, [], "", env))
        await self._mark_running(state, run, status, started_at, init=init)
        result = self.simulate(
            SimulatedContainer(run.namespace, state.name, run.name, name, container, env)
        )
        self.runs[-1].exit_code = result.exit_code
        gate = None if init else self._holds.get((state.name, "exit"))
        if gate is not None:
            await run.race(gate.wait())
        self._push_log(run, name, result.log)
        self._terminated(status, result.exit_code, result.message[:4096], started_at)
        await self._write_pod_status(run)
        return result.exit_code
