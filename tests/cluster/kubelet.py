"""A test kubelet for the real control plane: binds pods, runs them as local processes.

Test-only. It plays the two parts a real cluster has that the control plane here lacks:

- **the scheduler**: every pending pod of its namespace without ``spec.nodeName`` and without
  ``spec.schedulingGates`` (the scheduler leaves gated pods alone, and the apiserver refuses to
  bind them) is bound to this kubelet's Node through ``pods/binding``;
- **the kubelet**: pods bound to its Node run their init containers in order, then their main
  containers, as local processes (images map to local folders, see :mod:`.processes`) or, with
  ``runtime="podman"``, as real containers of local images (:mod:`.runtimes`); it writes
  ``pods/status`` (phase, conditions, container states, exit codes, termination messages),
  restarts containers of ``restartPolicy: Always``/``OnFailure`` pods with a back-off, ends a
  deleted pod's processes within its grace period and then removes the pod (``DELETE`` with
  grace 0, as a kubelet finishes a graceful deletion), and **serves container logs** on its
  HTTPS endpoint, so ``pods/log`` and ``kubectl logs`` work through the apiserver.

With ``network=PodNetwork(...)`` (process mode) every pod gets its own network namespace, pod
IP, ServiceAccount token and ``KUBERNETES_SERVICE_*`` (:mod:`.podnet`): an operator runs from its
chart as in a cluster. Without it, every pod shares the host's network and reports 127.0.0.1.

Job, ReplicaSet and Deployment logic is not here: the real controllers run in
kube-controller-manager. Simplifications: probes are not run (a running container is ready);
only ``emptyDir`` volumes get content (other volumes are empty folders; with a
:class:`~.podnet.PodNetwork`, ``projected`` ones too: the ServiceAccount token); in process mode
``securityContext`` is not enforced (container mode enforces it); resources are not limited.

:meth:`TestKubelet.hold` stops pods of a Job (or a pod name) at a point — before any container
starts, or after the main container exited but before that is reported — so tests observe
intermediate states without timing luck. :attr:`TestKubelet.runs` records every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from tests.cluster import projected
from tests.cluster.apiclient import ApiClient, KubeletApiError, pod_path
from tests.cluster.controlplane import free_port
from tests.cluster.pki import CertificateAuthority
from tests.cluster.podman import LocalImage, empty_dir
from tests.cluster.podnet import (
    IpPool,
    PodNetwork,
    PodSandbox,
    check_available,
    container_ports,
    fixed_mounts,
)
from tests.cluster.processes import (
    ConfigError,
    ImageSpec,
    StartError,
    decode_data,
    read_termination_message,
    resolve_env,
)
from tests.cluster.runtimes import (
    ImagePullError,
    Launch,
    PodmanRuntime,
    ProcessRuntime,
    Started,
)

logger = logging.getLogger(__name__)
HoldPoint = Literal["start", "exit"]
Runtime = Literal["processes", "podman"]
MERGE_PATCH = "application/merge-patch+json"
RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class ContainerRun:
    """One started process, as recorded in :attr:`TestKubelet.runs`."""

    namespace: str
    job: str
    pod: str
    container: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    pid: int | None = None
    exit_code: int | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)  # podman inspect


class Deleted(Exception):
    """The pod is being deleted: stop its containers."""


@dataclasses.dataclass(eq=False)
class PodRun:
    """One pod being run: the pod as last seen, its folder, and the status being built."""

    pod: dict[str, Any]
    directory: Path
    deleted: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    phase: str = "Pending"
    init_statuses: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    statuses: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    transitions: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    initialized: bool = False
    start_time: str = dataclasses.field(default_factory=now)
    mounts: dict[str, Path] = dataclasses.field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    ip: str = "127.0.0.1"  # "" until a pod network's sandbox has one
    sandbox: PodSandbox | None = None

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def job(self) -> str:
        return str((self.pod["metadata"].get("labels") or {}).get("job-name") or "")

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.pod.get("spec") or {})

    def _condition(self, kind: str, value: bool) -> dict[str, Any]:
        text = "True" if value else "False"
        previous = self.transitions.get(kind)
        if previous is None or previous[0] != text:
            self.transitions[kind] = (text, now())
        return {"type": kind, "status": text, "lastTransitionTime": self.transitions[kind][1]}

    def status(self) -> dict[str, Any]:
        ready = self.phase == "Running" and all(s.get("ready") for s in self.statuses)
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
            "startTime": self.start_time,
            "containerStatuses": [dict(s) for s in self.statuses],
            # The apiserver sets it at creation and refuses any other value (resources decide it).
            "qosClass": (self.pod.get("status") or {}).get("qosClass") or "BestEffort",
        }
        if self.ip:
            body.update(podIP=self.ip, podIPs=[{"ip": self.ip}])
        if self.init_statuses:
            body["initContainerStatuses"] = [dict(s) for s in self.init_statuses]
        return body


def _waiting(container: Mapping[str, Any], reason: str, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"waiting": state},
    }


class TestKubelet:
    """Bind and run the pods of ``namespace`` (None: every namespace) on the Node ``node``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        api: ApiClient,
        *,
        node: str,
        images: Mapping[str, ImageSpec | LocalImage],
        workdir: Path,
        ca: CertificateAuthority,
        namespace: str | None = None,
        max_grace: float = 5.0,
        runtime: Runtime = "processes",
        network: PodNetwork | None = None,
    ) -> None:
        """``images``: image reference -> :class:`ImageSpec` (a local folder; process mode) or
        :class:`LocalImage` (a real local image; ``runtime="podman"``). ``network``: every pod
        its own network namespace, IP and ServiceAccount token (:mod:`.podnet`; process mode)."""
        if network is not None and runtime != "processes":
            raise ValueError("a PodNetwork is for process mode only")
        if network is not None:
            check_available()
        self.network = network
        self._ips = IpPool()
        self.api = api
        self.node = node
        self.images: dict[str, ImageSpec | LocalImage] = dict(images)
        # Every digest reported as an imageID, and the image it stood for: a ``repo@sha256:``
        # reference runs that image even after ``images[tag]`` moved (as a registry serves an
        # old digest after a tag is pushed again).
        self.digests: dict[str, ImageSpec | LocalImage] = {}
        self.runtime: ProcessRuntime | PodmanRuntime = (
            PodmanRuntime(str(workdir.resolve())) if runtime == "podman" else ProcessRuntime()
        )
        self.workdir = workdir
        self.namespace = namespace
        self.max_grace = max_grace
        self.runs: list[ContainerRun] = []
        # (namespace, pod, container) of every followed log stream, once it is streaming: the
        # point a test waits for before it lets the container end.
        self.followed: list[tuple[str, str, str]] = []
        self._ca = ca
        self._pods: dict[str, PodRun] = {}
        self._logs: dict[tuple[str, str, str], Path] = {}
        self._holds: dict[tuple[str, HoldPoint], asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._site: web.TCPSite | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self.runtime.cleanup()  # a previous kubelet's of the same work folder
        await self._serve_logs()
        await self._register_node()
        base = "/api/v1" if self.namespace is None else f"/api/v1/namespaces/{self.namespace}"
        self._tasks.append(
            asyncio.create_task(
                self.api.inform(
                    f"{base}/pods", {}, self._on_pod, self._on_listed, lambda: self._stopping
                ),
                name=f"kubelet {self.node} pods",
            )
        )

    async def stop(self) -> None:
        """Kill every process, stop watching and serving, remove the Node."""
        self._stopping = True
        for run in list(self._pods.values()):
            run.deleted.set()
        tasks = [r.task for r in self._pods.values() if r.task is not None]
        if tasks:
            # The grace, plus time for a container runtime to stop and remove containers.
            _, pending = await asyncio.wait(tasks, timeout=self.max_grace + 10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runtime.cleanup()
        if self._runner is not None:
            await self._runner.cleanup()
        with contextlib.suppress(KubeletApiError):
            await self.api.request("DELETE", f"/api/v1/nodes/{self.node}")

    async def __aenter__(self) -> TestKubelet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def hold(self, key: str, *, at: HoldPoint = "start") -> asyncio.Event:
        """Hold pods of the Job (or the pod) ``key`` at ``at`` until the event is set.

        ``"start"``: the pod is bound and Pending, no container has started. ``"exit"``: the
        main container's process has exited, its status still says running.
        """
        return self._holds.setdefault((key, at), asyncio.Event())

    def release(self, key: str, *, at: HoldPoint = "start") -> None:
        event = self._holds.pop((key, at), None)
        if event is not None:
            event.set()

    def _hold_of(self, run: PodRun, at: HoldPoint) -> asyncio.Event | None:
        return self._holds.get((run.job, at)) or self._holds.get((run.name, at))

    # --- the Node and its log endpoint ----------------------------------------------------------

    async def _register_node(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node}},
        }
        with contextlib.suppress(KubeletApiError):
            await self.api.request("POST", "/api/v1/nodes", body)
        status = {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "test kubelet is posting ready status",
                        "lastHeartbeatTime": now(),
                        "lastTransitionTime": now(),
                    }
                ],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                "capacity": {"cpu": "2", "memory": "24Gi", "pods": "1000"},
                "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "1000"},
                "nodeInfo": {
                    "kubeletVersion": "v1.36.2-test",
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kernelVersion": "",
                    "osImage": "test kubelet",
                    "containerRuntimeVersion": self.runtime.name,
                    "kubeProxyVersion": "",
                },
            }
        }
        await self.api.request(
            "PATCH", f"/api/v1/nodes/{self.node}/status", status, content_type=MERGE_PATCH
        )

    async def _serve_logs(self) -> None:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._container_logs)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        pair = self._ca.issue(
            f"kubelet-{self.node}", common_name=self.node, hosts=("127.0.0.1",), server=True
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(pair.cert), str(pair.key))
        self.port = free_port()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context)
        await self._site.start()

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        key = (
            request.match_info["namespace"],
            request.match_info["pod"],
            request.match_info["container"],
        )
        path = self._logs.get(key)
        if path is None:
            raise web.HTTPNotFound(text=f"container {key[2]!r} of pod {key[1]!r} has no log")
        data = path.read_bytes() if path.exists() else b""
        if "tailLines" in request.query:
            lines = data.splitlines(keepends=True)
            count = int(request.query["tailLines"])
            data = b"".join(lines[-count:]) if count > 0 else b""
        if "limitBytes" in request.query:
            data = data[: int(request.query["limitBytes"])]
        if request.query.get("follow") not in ("true", "1"):
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse()
        response.content_type = "text/plain"
        await response.prepare(request)
        await response.write(data)
        self.followed.append(key)
        offset = path.stat().st_size if path.exists() else 0
        while not self._stopping and self._is_running(key):
            await asyncio.sleep(0.1)
            chunk = path.read_bytes()[offset:] if path.exists() else b""
            if chunk:
                offset += len(chunk)
                await response.write(chunk)
        chunk = path.read_bytes()[offset:] if path.exists() else b""
        if chunk:
            await response.write(chunk)
        await response.write_eof()
        return response

    def _is_running(self, key: tuple[str, str, str]) -> bool:
        for run in self._pods.values():
            if (run.namespace, run.name) == key[:2]:
                return any(
                    s["name"] == key[2] and "running" in s.get("state", {})
                    for s in [*run.statuses, *run.init_statuses]
                )
        return False

    # --- the pod informer -----------------------------------------------------------------------

    def _on_listed(self, items: list[dict[str, Any]]) -> None:
        present = {p["metadata"]["uid"] for p in items}
        for uid, run in list(self._pods.items()):
            if uid not in present:
                run.deleted.set()
        for pod in items:
            self._on_pod("ADDED", pod)

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        run = self._pods.get(uid)
        if run is not None:
            run.pod = pod
            if kind == "DELETED" or meta.get("deletionTimestamp"):
                run.deleted.set()
            return
        if kind == "DELETED" or self._stopping:
            return
        phase = (pod.get("status") or {}).get("phase")
        if not spec.get("nodeName"):
            if not spec.get("schedulingGates") and not meta.get("deletionTimestamp"):
                self._spawn(self._bind(pod), f"bind {meta['name']}")
            return
        if spec["nodeName"] != self.node or phase in ("Succeeded", "Failed"):
            return
        if meta.get("deletionTimestamp"):
            self._spawn(self._finish_deletion(pod), f"delete {meta['name']}")
            return
        directory = self.workdir / meta["namespace"] / f"{meta['name']}-{uid[:8]}"
        run = PodRun(pod=pod, directory=directory, ip="" if self.network else "127.0.0.1")
        self._pods[uid] = run
        run.task = asyncio.create_task(self._run_pod(run), name=f"pod {meta['name']}")

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
        }
        try:
            await self.api.request(
                "POST", f"{pod_path(meta['namespace'], meta['name'])}/binding", body
            )
        except KubeletApiError as error:
            if error.code not in (404, 409):  # gone, or bound/gated meanwhile
                logger.warning("binding %s failed: %s", meta["name"], error)

    async def _finish_deletion(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }
        with contextlib.suppress(KubeletApiError):
            await self.api.request("DELETE", pod_path(meta["namespace"], meta["name"]), body)

    # --- running a pod --------------------------------------------------------------------------

    async def _write_status(self, run: PodRun) -> None:
        with contextlib.suppress(KubeletApiError):
            await self.api.request(
                "PATCH",
                f"{pod_path(run.namespace, run.name)}/status",
                {"status": run.status()},
                content_type=MERGE_PATCH,
            )

    async def _run_pod(self, run: PodRun) -> None:
        spec = run.spec
        init_containers = list(spec.get("initContainers") or [])
        containers = list(spec.get("containers") or [])
        run.init_statuses = [_waiting(c, "PodInitializing") for c in init_containers]
        run.statuses = [
            _waiting(c, "PodInitializing" if init_containers else "ContainerCreating")
            for c in containers
        ]
        try:
            await self._write_status(run)
            hold = self._hold_of(run, "start")
            if hold is not None:
                await self._until(run, hold.wait())
            self._make_volumes(run)
            if self.network is not None:
                await self._sandbox(run, self.network)
            for index, container in enumerate(init_containers):
                code = await self._run_restarting(run, container, index, init=True)
                if code != 0:
                    run.phase = "Failed"
                    for status in run.statuses:
                        status["state"] = {"waiting": {"reason": "PodInitializing"}}
                    await self._write_status(run)
                    await self._wait_deleted(run)
                    return
            run.initialized = True
            # Each container watches for the pod's deletion itself and stops within the grace
            # period (cancelling them from here would cut the grace short).
            results = await asyncio.gather(
                *(self._run_restarting(run, c, i, init=False) for i, c in enumerate(containers)),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, Deleted):
                    raise result
            if any(isinstance(result, Deleted) for result in results):
                raise Deleted
            codes = [int(code) for code in results if isinstance(code, int)]
            run.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
            await self._write_status(run)
            await self._wait_deleted(run)
        except Deleted:
            await self._terminate(run)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("pod %s/%s crashed the test kubelet", run.namespace, run.name)
            raise
        finally:
            self._pods.pop(run.pod["metadata"]["uid"], None)
            if run.sandbox is not None:
                await asyncio.shield(run.sandbox.close())

    async def _until(self, run: PodRun, awaitable: Any) -> Any:
        """Await ``awaitable`` unless the pod is deleted first (then raise :class:`Deleted`)."""
        task = asyncio.ensure_future(awaitable)
        deleted = asyncio.ensure_future(run.deleted.wait())
        try:
            await asyncio.wait([task, deleted], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()  # never leave it running unobserved
            raise
        finally:
            deleted.cancel()
        if task.done() and not run.deleted.is_set():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Deleted):
            await task
        raise Deleted

    async def _wait_deleted(self, run: PodRun) -> None:
        """A finished pod stays until it is deleted; then the kubelet removes it."""
        await run.deleted.wait()
        if run.pod["metadata"].get("deletionTimestamp"):
            await self._finish_deletion(run.pod)

    async def _terminate(self, run: PodRun) -> None:
        """The pod was deleted while running: its processes are gone (see _supervise)."""
        if run.phase not in ("Succeeded", "Failed"):
            run.phase = "Failed"
            for status in [*run.init_statuses, *run.statuses]:
                if "terminated" not in status.get("state", {}):
                    status["ready"] = False
                    status["state"] = {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "ContainerStatusUnknown",
                            "message": "The container could not be located when the pod was "
                            "deleted.  The container used to be Running",
                            "finishedAt": now(),
                            "startedAt": status.get("state", {})
                            .get("running", {})
                            .get("startedAt", now()),
                        }
                    }
            await self._write_status(run)
        if run.pod["metadata"].get("deletionTimestamp"):
            await self._finish_deletion(run.pod)

    def _make_volumes(self, run: PodRun) -> None:
        for volume in run.spec.get("volumes") or []:
            local = empty_dir(run.directory / "volumes" / str(volume["name"]))
            run.mounts[str(volume["name"])] = local
        (run.directory / "logs").mkdir(parents=True, exist_ok=True)
        (run.directory / "termination").mkdir(parents=True, exist_ok=True)

    async def _sandbox(self, run: PodRun, network: PodNetwork) -> None:
        """Fill the projected volumes (ServiceAccount token), then make the pod's namespaces."""
        for volume in run.spec.get("volumes") or []:
            while True:
                try:
                    await projected.fill(
                        volume,
                        run.mounts[str(volume["name"])],
                        run.pod,
                        request=self._post,
                        lookup=self._lookup,
                        pod_ip=run.ip,
                    )
                    break
                except ConfigError:  # e.g. kube-root-ca.crt not published yet: ContainerCreating
                    await self._until(run, asyncio.sleep(0.2))
        run.sandbox = await PodSandbox.create(
            self._ips,
            ports=container_ports(run.pod),
            egress=(network.apiserver_port, *network.forwarded_ports),
            binds=fixed_mounts(run.pod, run.mounts),
        )
        run.ip = run.sandbox.ip
        await self._write_status(run)

    async def _post(self, method: str, path: str, body: Any) -> Any:
        return await self.api.request(method, path, body)

    async def _run_restarting(
        self, run: PodRun, container: Mapping[str, Any], index: int, *, init: bool
    ) -> int:
        policy = str(run.spec.get("restartPolicy") or "Always")
        attempt = 0
        while True:
            code = await self._run_container(run, container, index, init=init)
            restart = (policy == "Always" and not init) or (policy != "Never" and code != 0)
            if not restart:
                return code
            status = (run.init_statuses if init else run.statuses)[index]
            status["restartCount"] = status.get("restartCount", 0) + 1
            await self._until(
                run, asyncio.sleep(RESTART_BACKOFF[min(attempt, len(RESTART_BACKOFF) - 1)])
            )
            attempt += 1

    async def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        plural = "secrets" if kind == "Secret" else "configmaps"
        try:
            obj = await self.api.request("GET", f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        except KubeletApiError as error:
            if error.code == 404:
                return None
            raise
        return decode_data(kind, obj)

    async def _run_container(
        self, run: PodRun, container: Mapping[str, Any], index: int, *, init: bool
    ) -> int:
        name = str(container["name"])
        status = (run.init_statuses if init else run.statuses)[index]
        image = self._image(str(container.get("image")))
        if image is None:
            await self._image_pull_error(
                run,
                status,
                f"image {container.get('image')!r} is not known to the test kubelet (map it to "
                "a local image in its images)",
            )
        prefix = "init-" if init else ""
        termination = run.directory / "termination" / f"{prefix}{name}"
        log_path = run.directory / "logs" / f"{prefix}{name}.log"
        self._logs[(run.namespace, run.name, name)] = log_path
        while True:
            started_at = now()
            try:
                own_env = await resolve_env(container, run.pod, self._lookup, pod_ip=run.ip)
                if self.network is not None:
                    own_env = {**self.network.service_env(), **own_env}
                termination.write_bytes(b"")
                launch = Launch(
                    run.pod, container, init, own_env, dict(run.mounts), termination, log_path,
                    sandbox=run.sandbox,
                )  # fmt: skip
                started = await self.runtime.start(launch, image)
                if "@" in started.image_id:
                    self.digests[started.image_id.rsplit("@", 1)[1]] = image
                break
            except ConfigError as exc:
                status["state"] = {"waiting": {"reason": exc.reason, "message": str(exc)}}
                await self._write_status(run)
                await self._until(run, asyncio.sleep(0.2))
            except ImagePullError as exc:
                await self._image_pull_error(run, status, str(exc))
            except StartError as exc:
                return await self._start_error(run, status, exc, started_at)
        record = ContainerRun(
            run.namespace, run.job, run.name, name, started.argv, started.cwd, started.env,
            started.pid,
        )  # fmt: skip
        self.runs.append(record)
        try:
            return await self._supervise(run, status, started, record, launch, started_at)
        except StartError as exc:  # the runtime could not start it after all
            return await self._start_error(run, status, exc, started_at)
        finally:
            record.details = started.details
            # Release it (podman: remove the container), also when the pod's task is cancelled.
            await asyncio.shield(started.close())

    async def _supervise(
        self,
        run: PodRun,
        status: dict[str, Any],
        started: Started,
        record: ContainerRun,
        launch: Launch,
        started_at: str,
    ) -> int:
        policy = str(launch.container.get("terminationMessagePolicy") or "File")
        termination, log_path = launch.termination, launch.log_path
        if not launch.init:
            run.phase = "Running"
        status.update(
            state={"running": {"startedAt": started_at}},
            started=True,
            ready=not launch.init,
            containerID=started.container_id,
            imageID=started.image_id,
        )
        await self._write_status(run)
        try:
            code = await self._until(run, started.wait())
            gate = None if launch.init else self._hold_of(run, "exit")
            if gate is not None:
                await self._until(run, gate.wait())
        except Deleted:
            grace = run.pod["metadata"].get("deletionGracePeriodSeconds")
            if grace is None:
                grace = run.spec.get("terminationGracePeriodSeconds", 30)
            code = await started.stop(min(float(grace), self.max_grace))
            record.exit_code = code
            self._terminated(status, code, termination, policy, log_path, started_at)
            raise
        record.exit_code = code
        self._terminated(status, code, termination, policy, log_path, started_at)
        if started.details.get("reason") == "OOMKilled":
            status["state"]["terminated"]["reason"] = "OOMKilled"
        await self._write_status(run)
        return int(code)

    async def _image_pull_error(self, run: PodRun, status: dict[str, Any], message: str) -> None:
        """ErrImagePull until the pod is deleted (then :class:`Deleted`)."""
        status["state"] = {"waiting": {"reason": "ErrImagePull", "message": message}}
        await self._write_status(run)
        await run.deleted.wait()
        raise Deleted

    async def _start_error(
        self, run: PodRun, status: dict[str, Any], exc: StartError, started_at: str
    ) -> int:
        status["state"] = {
            "terminated": {
                "exitCode": 128,
                "reason": exc.reason,
                "message": str(exc),
                "startedAt": started_at,
                "finishedAt": now(),
            }
        }
        status["ready"] = False
        await self._write_status(run)
        return 128

    @staticmethod
    def _terminated(
        status: dict[str, Any],
        code: int,
        termination: Path,
        policy: str,
        log_path: Path,
        started_at: str,
    ) -> None:
        message = read_termination_message(termination, policy, code, log_path)
        state: dict[str, Any] = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started_at,
            "finishedAt": now(),
        }
        if message:
            state["message"] = message
        status.update(state={"terminated": state}, ready=False)

    def _image(self, reference: str) -> ImageSpec | LocalImage | None:
        if reference in self.images:
            return self.images[reference]
        digest = reference.rsplit("@", 1)[1] if "@" in reference else None
        if digest in self.digests:
            return self.digests[digest]
        bare = reference.split("@", 1)[0]
        if ":" in bare.rsplit("/", 1)[-1]:
            bare = bare.rsplit(":", 1)[0]
        return self.images.get(bare)

    def log_of(self, namespace: str, pod: str, container: str) -> str:
        path = self._logs.get((namespace, pod, container))
        return path.read_text(errors="replace") if path and path.exists() else ""
