"""How the local kubelet runs one pod: its phase from Pending to Succeeded/Failed.

Role: the pod layer of :class:`~.kubelet.LocalKubelet` (:class:`PodExecutor`, a base class of
it, on top of :class:`~.containers.ContainerRunner`): write the initial container statuses,
honour ``hold(..., at="start")`` and ``pod_start_delay``, "pull" images (an unmapped image is
``ErrImagePull``), make the ``emptyDir`` volumes (any other volume fails the pod), run the init
containers in order and then the main containers, and report the pod's phase; an aborted pod
(deadline, suspension, Job deletion) is marked ``Failed``. The pod's local folder is removed
when it ends.

What it must not do: create or delete pods, or count attempts and decide the Job's outcome
(that is :mod:`.jobcontrol`), run processes itself (that is :mod:`.containers`), or talk to the
apiserver other than through :class:`~.apiclient.ApiClient`.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping
from typing import Any

from alembic_operator.emulation.containers import ContainerRunner
from alembic_operator.emulation.jobstatus import suspended
from alembic_operator.emulation.runstates import Aborted, JobState, PodRun, write_pod_status
from alembic_operator.emulation.timestamps import now


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


class PodExecutor(ContainerRunner):
    """The pod layer of :class:`~.kubelet.LocalKubelet` (which sets these attributes)."""

    pod_start_delay: float
    _pods: dict[str, PodRun]

    async def _run_pod(self, state: JobState, run: PodRun, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        state.current = run
        if state.gone:
            run.abort_with("JobDeleted")
        elif suspended(state.job):
            run.abort_with("Suspended")
        timer = (
            None if deadline is None else loop.call_at(deadline, run.abort_with, "DeadlineExceeded")
        )
        try:
            await self._execute(state, run)
        except Aborted as exc:
            await self._report_aborted(run, exc.reason)
        finally:
            if timer is not None:
                timer.cancel()
            state.current = None
            self._pods.pop(run.uid, None)
            shutil.rmtree(run.directory, ignore_errors=True)

    async def _report_aborted(self, run: PodRun, reason: str) -> None:
        if reason in {"PodDeleted", "KubeletStopping"}:
            return
        run.phase, run.ready = "Failed", False
        if reason == "DeadlineExceeded":
            run.reason = "DeadlineExceeded"
            run.message = "Pod was active on the node longer than the specified deadline"
        await write_pod_status(self._client, run)

    async def _execute(self, state: JobState, run: PodRun) -> None:
        spec = run.pod.get("spec") or {}
        inits, mains = spec.get("initContainers") or [], spec.get("containers") or []
        run.init_statuses = [_initial_status(c, "PodInitializing") for c in inits]
        waiting = "PodInitializing" if inits else "ContainerCreating"
        run.statuses = [_initial_status(c, waiting) for c in mains]
        run.initialized = not inits
        await write_pod_status(self._client, run)
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
                await write_pod_status(self._client, run)
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
        await write_pod_status(self._client, run)

    async def _pull_images(
        self, run: PodRun, inits: list[dict[str, Any]], mains: list[dict[str, Any]]
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
                await write_pod_status(self._client, run)
                status["state"] = {
                    "terminated": {
                        "exitCode": 128,
                        "reason": "ErrImagePull",
                        "message": message,
                        "startedAt": None,
                        "finishedAt": now(),
                    }
                }
                run.phase, run.reason, run.message = "Failed", "ErrImagePull", message
                await write_pod_status(self._client, run)
                return False
        return True

    async def _make_volumes(self, run: PodRun, spec: Mapping[str, Any]) -> bool:
        for volume in spec.get("volumes") or []:
            if "emptyDir" not in volume:
                kinds = sorted(k for k in volume if k != "name")
                run.phase, run.reason = "Failed", "UnsupportedVolume"
                run.message = (
                    f"volume {volume.get('name')!r}: only emptyDir is emulated, not {kinds}"
                )
                await write_pod_status(self._client, run)
                return False
            local = run.directory / "volumes" / str(volume["name"])
            local.mkdir(parents=True, exist_ok=True)
            run.mounts[str(volume["name"])] = local
        (run.directory / "termination").mkdir(parents=True, exist_ok=True)
        (run.directory / "logs").mkdir(parents=True, exist_ok=True)
        return True
