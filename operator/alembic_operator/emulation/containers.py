"""How the local kubelet runs one container of a pod and reports its state.

Role: the container layer of :class:`~.kubelet.LocalKubelet` (:class:`ContainerRunner`, a base
class of it): resolve the container's env (waiting with ``CreateContainerConfigError`` while a
Secret/ConfigMap is missing), map its paths, start its process (or call the ``simulate``
callback), supervise it until it exits or the pod is aborted, pump its output to ``log_sink``,
and write the container's ``waiting``/``running``/``terminated`` state to ``pods/status``. It
records each run as a :class:`~.runstates.ContainerRun`.

What it must not do: decide the pod's phase or anything about its Job (:mod:`.podexecution`
and :mod:`.jobcontrol` do; the one Job write here is ``ready`` once the main container runs),
talk to the apiserver other than through :class:`~.apiclient.ApiClient`, or leave a process
behind when cancelled. Process plumbing (argv, env, cwd, signals) lives in :mod:`.pods`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from alembic_operator.emulation.apiclient import ApiClient, KubeletApiError
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
from alembic_operator.emulation.runstates import (
    Aborted,
    ContainerRun,
    JobGone,
    JobState,
    PodRun,
    SimulatedContainer,
    Simulator,
    write_job_status,
    write_pod_status,
)
from alembic_operator.emulation.timestamps import now

logger = logging.getLogger(__name__)

LogSink = Callable[[str, str, str, str], None]  # (namespace, pod, container, text)
HoldPoint = Literal["start", "exit"]


def _read_text(path: Path) -> str:
    return path.read_text(errors="replace")


def _terminated(status: dict[str, Any], code: int, message: str, started_at: str) -> None:
    terminated = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": started_at,
        "finishedAt": now(),
        "containerID": status.get("containerID"),
    }
    if message:
        terminated["message"] = message
    status.update(state={"terminated": terminated}, ready=False, started=False)


class ContainerRunner:
    """The container layer of :class:`~.kubelet.LocalKubelet` (which sets these attributes)."""

    images: dict[str, ImageSpec]
    log_sink: LogSink | None
    config_retry_interval: float
    max_grace: float
    simulate: Simulator | None
    runs: list[ContainerRun]
    logs: dict[tuple[str, str, str], str]
    _client: ApiClient
    _holds: dict[tuple[str, HoldPoint], asyncio.Event]

    def _image(self, reference: str) -> ImageSpec | None:
        if reference in self.images:
            return self.images[reference]
        bare = reference.split("@", 1)[0]
        if ":" in bare.rsplit("/", 1)[-1]:
            bare = bare.rsplit(":", 1)[0]
        return self.images.get(bare)

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

    def _push_log(self, run: PodRun, container: str, text: str) -> None:
        key = (run.namespace, run.name, container)
        if self.logs.get(key) == text:
            return
        self.logs[key] = text
        if self.log_sink is not None:
            try:
                self.log_sink(run.namespace, run.name, container, text)
            except Exception:
                logger.exception("the log sink failed for %s/%s", run.name, container)

    async def _pump_log(self, run: PodRun, container: str, path: Path) -> None:
        while True:
            await asyncio.sleep(0.2)
            with contextlib.suppress(OSError):
                self._push_log(run, container, _read_text(path))

    async def _resolve_env(
        self, run: PodRun, container: Mapping[str, Any], status: dict[str, Any]
    ) -> dict[str, str]:
        while True:
            try:
                return await resolve_env(container, run.pod, self._lookup)
            except ConfigError as exc:
                waiting = {"waiting": {"reason": exc.reason, "message": str(exc)}}
                if status["state"] != waiting:
                    status["state"] = waiting
                    await write_pod_status(self._client, run)
                await run.race(asyncio.sleep(self.config_retry_interval))

    async def _run_container(
        self,
        state: JobState,
        run: PodRun,
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
        started_at = now()
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
                        "finishedAt": now(),
                    }
                }
                await write_pod_status(self._client, run)
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
        self, state: JobState, run: PodRun, status: dict[str, Any], started_at: str, *, init: bool
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
        await write_pod_status(self._client, run)
        if run.ready and not init and not state.gone:
            state.status["ready"] = 1
            with contextlib.suppress(JobGone, KubeletApiError):
                await write_job_status(self._client, state)

    async def _supervise(
        self,
        state: JobState,
        run: PodRun,
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
            except Aborted:
                grace = float((run.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
                code = await stop_process(process, min(grace, self.max_grace))
                message = read_termination_message(termination, policy, code, log_path)
                _terminated(status, code, message, started_at)
                raise
            message = read_termination_message(termination, policy, code, log_path)
            _terminated(status, code, message, started_at)
            self._push_log(run, name, _read_text(log_path))
            await write_pod_status(self._client, run)
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
        state: JobState,
        run: PodRun,
        container: Mapping[str, Any],
        env: dict[str, str],
        status: dict[str, Any],
        *,
        init: bool,
    ) -> int:
        assert self.simulate is not None
        name = str(container["name"])
        started_at = now()
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
        _terminated(status, result.exit_code, result.message[:4096], started_at)
        await write_pod_status(self._client, run)
        return result.exit_code
