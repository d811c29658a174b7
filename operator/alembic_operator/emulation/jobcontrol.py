"""The local Job controller: one pod at a time per batch/v1 Job, until it completes or fails.

Role: the Job layer of :class:`~.kubelet.LocalKubelet` (:class:`JobController`, a base class of
it, on top of :class:`~.podexecution.PodExecutor`): per Job, adopt pods left by an earlier
kubelet, create a pod from the template (labels, ownerReference), keep ``jobs/status``
(``active``/``ready``/``failed``/``succeeded``, ``startTime``, ``completionTime``) up to date,
apply ``activeDeadlineSeconds``, ``suspend``, ``podFailurePolicy`` (via :mod:`.podfailure`) and
``backoffLimit``, and write the terminal conditions ``SuccessCriteriaMet`` → ``Complete`` or
``FailureTarget`` → ``Failed``. Also the TTL-after-finished controller (:meth:`_expire`).

What it must not do: run containers or write ``pods/status`` for a running pod (that is
:mod:`.podexecution` and :mod:`.containers`), watch the apiserver (that is :mod:`.kubelet`), or
talk to it other than through :class:`~.apiclient.ApiClient`. Deviations from a real controller
(one pod at a time, ``retry_delay`` instead of exponential backoff) are listed in
:mod:`.kubelet`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from pathlib import Path
from typing import Any

from alembic_operator.emulation.apiclient import MERGE_PATCH, KubeletApiError, job_path, pod_path
from alembic_operator.emulation.jobstatus import (
    BACKOFF_MESSAGE,
    DEADLINE_MESSAGE,
    SUCCESS_MESSAGE,
    SUCCESS_REASON,
    backoff_limit,
    condition_true,
    set_condition,
    suspended,
)
from alembic_operator.emulation.jsontree import clone
from alembic_operator.emulation.podexecution import PodExecutor
from alembic_operator.emulation.podfailure import evaluate_pod_failure_policy
from alembic_operator.emulation.runstates import JobGone, JobState, PodRun, write_job_status
from alembic_operator.emulation.timestamps import now, parse_time

logger = logging.getLogger(__name__)

UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


class JobController(PodExecutor):
    """The Job layer of :class:`~.kubelet.LocalKubelet` (which sets these attributes)."""

    retry_delay: float
    complete_after: float
    node_name: str
    _workdir: Path | None
    _stopping: bool
    _job_pods: dict[str, dict[str, dict[str, Any]]]  # Job uid -> pod uid -> pod (pod informer)
    _pods_listed: asyncio.Event  # set once the pod informer has listed

    async def _run_job(self, state: JobState) -> None:
        try:
            await self._job_loop(state)
        except JobGone:
            logger.debug("job %s/%s is gone", state.namespace, state.name)
        except asyncio.CancelledError:
            raise
        except Exception:
            if not self._stopping:
                logger.exception("the local Job controller failed on %s", state.name)

    async def _job_loop(self, state: JobState) -> None:
        loop = asyncio.get_running_loop()
        state.status = clone(state.job.get("status") or {})
        if await self._adopt_leftovers(state):
            return
        while not state.gone and not self._stopping:
            if suspended(state.job):
                await self._suspend(state)
                continue
            status = state.status
            started = self._start_clock(state)
            deadline_seconds = (state.job.get("spec") or {}).get("activeDeadlineSeconds")
            deadline = None if deadline_seconds is None else started + deadline_seconds
            if deadline is not None and loop.time() >= deadline:
                await self._fail(state, "DeadlineExceeded", DEADLINE_MESSAGE)
                return
            run = await self._create_pod(state)
            status.update(active=1, ready=0, terminating=0)
            await write_job_status(self._client, state)
            await self._run_pod(state, run, deadline)
            status.update(active=0, ready=0)
            aborted = run.abort.result() if run.abort.done() else None
            if aborted in {"JobDeleted", "KubeletStopping"} or state.gone:
                return
            if aborted == "DeadlineExceeded":
                status["failed"] = int(status.get("failed") or 0) + 1
                await self._fail(state, "DeadlineExceeded", DEADLINE_MESSAGE)
                return
            if aborted == "Suspended":
                await self._delete_pod(run)
                continue
            if run.phase == "Succeeded":
                await self._succeed(state)
                return
            if await self._after_failure(state, run, aborted):
                return
            await write_job_status(self._client, state)
            if self.retry_delay:
                await asyncio.sleep(self.retry_delay)

    def _start_clock(self, state: JobState) -> float:
        """Set ``startTime`` if unset (reset on resume); the loop time it stands for."""
        loop = asyncio.get_running_loop()
        status = state.status
        if condition_true(status, "Suspended"):
            set_condition(status, "Suspended", "False", "JobResumed", "Job resumed")
            status["startTime"] = None
        if not status.get("startTime"):
            status["startTime"] = now()
            state.started = loop.time()
        elif state.started is None:
            started = parse_time(status["startTime"]) or datetime.datetime.now(datetime.UTC)
            elapsed = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
            state.started = loop.time() - max(elapsed, 0.0)
        return state.started

    async def _after_failure(self, state: JobState, run: PodRun, aborted: str | None) -> bool:
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
        if status["failed"] > backoff_limit(state.job):
            await self._fail(state, "BackoffLimitExceeded", BACKOFF_MESSAGE)
            return True
        return False

    async def _adopt_leftovers(self, state: JobState) -> bool:
        """Pods of this Job from an earlier kubelet: a success ends the Job; a pod that was
        running has lost its process and counts as failed. True when the Job is finished.

        The pods come from the pod informer (as a controller's shared informer cache, once it
        has listed), not from one LIST per Job."""
        await self._pods_listed.wait()
        if self._stopping:
            return True
        mine = self._job_pods.get(state.uid, {}).values()
        pods = sorted(
            (p for p in mine if p["metadata"].get("namespace") == state.namespace),
            key=lambda p: str(p["metadata"]["name"]),
        )
        lost = 0
        for pod in pods:
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
                        pod_path(state.namespace, pod["metadata"]["name"]) + "/status",
                        body,
                        content_type=MERGE_PATCH,
                    )
        if lost:
            state.status["failed"] = int(state.status.get("failed") or 0) + lost
            state.status.update(active=0, ready=0)
            if state.status["failed"] > backoff_limit(state.job):
                await self._fail(state, "BackoffLimitExceeded", BACKOFF_MESSAGE)
                return True
            await write_job_status(self._client, state)
        return False

    async def _suspend(self, state: JobState) -> None:
        status = state.status
        if not condition_true(status, "Suspended"):
            set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended")
            status.update(active=0, ready=0)
            await write_job_status(self._client, state)
        while True:
            state.changed.clear()
            if state.gone or self._stopping or not suspended(state.job):
                return
            await state.changed.wait()

    async def _hold_terminal(self, state: JobState) -> None:
        created = parse_time(state.job["metadata"].get("creationTimestamp"))
        if not self.complete_after or created is None:
            return
        elapsed = (datetime.datetime.now(datetime.UTC) - created).total_seconds()
        if elapsed < self.complete_after:
            await asyncio.sleep(self.complete_after - elapsed)

    async def _succeed(self, state: JobState) -> None:
        status = state.status
        status.update(active=0, ready=0, terminating=0, succeeded=1)
        status.setdefault("uncountedTerminatedPods", {})
        set_condition(status, "SuccessCriteriaMet", "True", SUCCESS_REASON, SUCCESS_MESSAGE)
        await write_job_status(self._client, state)
        await self._hold_terminal(state)
        status["completionTime"] = now()
        set_condition(status, "Complete", "True", SUCCESS_REASON, SUCCESS_MESSAGE)
        await write_job_status(self._client, state)

    async def _fail(self, state: JobState, reason: str, message: str) -> None:
        status = state.status
        status.update(active=0, ready=0, terminating=0)
        status.setdefault("uncountedTerminatedPods", {})
        set_condition(status, "FailureTarget", "True", reason, message)
        await write_job_status(self._client, state)
        await self._hold_terminal(state)
        set_condition(status, "Failed", "True", reason, message)
        await write_job_status(self._client, state)

    async def _create_pod(self, state: JobState) -> PodRun:
        template = clone((state.job.get("spec") or {}).get("template") or {})
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
                raise JobGone from exc
            raise
        assert self._workdir is not None
        directory = self._workdir / f"{pod['metadata']['namespace']}_{pod['metadata']['name']}"
        run = PodRun(
            pod=pod,
            job_name=state.name,
            abort=asyncio.get_running_loop().create_future(),
            directory=directory,
        )
        self._pods[run.uid] = run
        return run

    async def _delete_pod(self, run: PodRun) -> None:
        with contextlib.suppress(KubeletApiError):
            await self._client.request("DELETE", pod_path(run.namespace, run.name))

    async def _expire(self, job: dict[str, Any], seconds: float) -> None:
        """The TTL-after-finished controller: delete a finished Job (foreground) after its TTL."""
        status = job.get("status") or {}
        finished = status.get("completionTime") or next(
            (c.get("lastTransitionTime") for c in status.get("conditions") or []
             if c.get("type") in {"Complete", "Failed"} and c.get("status") == "True"),
            None,
        )  # fmt: skip
        at = parse_time(finished) or datetime.datetime.now(datetime.UTC)
        delay = (at - datetime.datetime.now(datetime.UTC)).total_seconds() + seconds
        if delay > 0:
            await asyncio.sleep(delay)
        meta = job["metadata"]
        path = job_path(str(meta.get("namespace")), str(meta["name"]))
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground",
                   "preconditions": {"uid": meta["uid"]}}  # fmt: skip
        try:
            await self._client.request("DELETE", path, options)
        except KubeletApiError as exc:
            if exc.code not in {404, 409}:
                logger.warning("could not delete the expired Job %s: %s", meta["name"], exc)
