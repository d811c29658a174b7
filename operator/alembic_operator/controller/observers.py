"""Observing: fetches what the core's :class:`ObservationPlan` asks for and parses it.

Raw Job and Pod objects stop here and become :mod:`alembic_operator.model.observations` values.
Jobs and their pods come from the watch-fed :class:`~alembic_operator.controller.jobcache.JobCache`
(``api.jobs``) when it can prove them current, from a GET and a LIST otherwise; a Job missing
there is looked up with a GET, so only the API ever reports a Job absent. A terminated pod's
log is read from the API once (its uid keys ``api.logs``); a plan pod's log that cannot be read
is observed as such (``output_error``: the core reports and retries it). Reads only: this module
never writes to the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from alembic_operator.controller.kubeapi import KubeApi
from alembic_operator.core.admission import POD_GATE
from alembic_operator.core.gates import HELD_BY_ANNOTATION, parse_held_by
from alembic_operator.core.jobs import (
    LABEL_ATTEMPT,
    LABEL_GENERATION,
    LABEL_MODE,
    MIGRATE_CONTAINER,
)
from alembic_operator.errors import OperatorError
from alembic_operator.model.migrations import Migration
from alembic_operator.model.observations import (
    DeploymentQuery,
    Observation,
    ObservationPlan,
    ObservedDeployment,
    ObservedJob,
    ObservedPod,
    SecretState,
    Termination,
    WorkloadPod,
)
from alembic_operator.model.spec import KIND
from alembic_operator.model.status import parse_time

LOG_TAIL_READ_BYTES = 16 * 1024
LOG_TAIL_LINES = 200
# More than a ConfigMap can hold: a plan whose SQL did not fit is reported as omitted.
PLAN_LOG_READ_BYTES = 8 * 1024 * 1024


async def observe(api: KubeApi, migration: Migration, plan: ObservationPlan) -> Observation:
    namespace = migration.ref.namespace
    jobs = []
    for name in plan.job_names:
        raw = api.jobs.job(namespace, name) or await api.get_job(namespace, name)
        if raw is not None:
            listed: Sequence[Mapping[str, Any]] | None = api.jobs.pods(raw)
            if listed is None:
                uid = str((raw.get("metadata") or {}).get("uid") or "") or None
                listed = await api.list_job_pods(namespace, name, job_uid=uid)
            pods = [parse_pod(p) for p in listed]
            pods.sort(key=lambda p: (p.created_at is None, p.created_at, p.name))
            job = parse_job(raw, pods=await _with_log_tail(api, namespace, pods))
            jobs.append(await _with_plan_output(api, namespace, job))
    secret = None
    if plan.check_secret:
        ref = migration.spec.database.url_secret_ref
        keys = await api.read_secret_keys(namespace, ref.name)
        secret = (
            SecretState.MISSING_SECRET
            if keys is None
            else SecretState.PRESENT
            if ref.key in keys
            else SecretState.MISSING_KEY
        )
    deployments = (
        await observe_deployments(api, namespace, plan.deployments) if plan.deployments else ()
    )
    return Observation(jobs=tuple(jobs), secret=secret, deployments=deployments)


async def _with_plan_output(api: KubeApi, namespace: str, job: ObservedJob) -> ObservedJob:
    """A finished plan pod's whole log: the plan's SQL is in it, behind a line prefix."""
    done = [p for p in job.pods if p.terminated is not None and p.terminated.exit_code == 0]
    if job.mode != "plan" or not done:
        return job
    newest = done[-1]
    try:
        output = await api.read_pod_log(
            namespace,
            newest.name,
            container=MIGRATE_CONTAINER,
            limit_bytes=PLAN_LOG_READ_BYTES,
            terminated_uid=newest.uid,
        )
    except OperatorError as exc:  # the core says so in status and retries (LogsUnreadable)
        unreadable = replace(newest, output_error=str(exc))
        return replace(job, pods=tuple(unreadable if p is newest else p for p in job.pods))
    pods = tuple(replace(p, output=output) if p is newest else p for p in job.pods)
    return replace(job, pods=pods)


async def observe_deployments(
    api: KubeApi, namespace: str, query: DeploymentQuery
) -> tuple[ObservedDeployment, ...]:
    """The Deployments the gate asks for: by selector (one list), then the named ones."""
    found: dict[str, ObservedDeployment] = {}
    if query.selector is not None:
        for raw in await api.list_deployments(namespace, selector=query.selector):
            deployment = parse_deployment(raw)
            found[deployment.name] = deployment
    for name in query.names:
        if name not in found:
            named = await api.get_deployment(namespace, name)
            if named is not None:
                found[name] = parse_deployment(named)
    return tuple(found.values())


def parse_workload_pod(raw: Mapping[str, Any], *, namespace: str = "") -> WorkloadPod:
    """A pod as the pod gate sees it (``namespace``: the request's, when the body has none)."""
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    owner = next((o for o in meta.get("ownerReferences") or () if o.get("controller")), None)
    gates = {str(g.get("name")) for g in spec.get("schedulingGates") or ()}
    return WorkloadPod(
        namespace=str(meta.get("namespace") or namespace),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        labels=dict(meta.get("labels") or {}),
        images=tuple(str(c.get("image")) for c in spec.get("containers") or () if c.get("image")),
        owner=(str(owner.get("kind")), str(owner.get("name"))) if owner else None,
        gated=POD_GATE in gates,
        bound=bool(spec.get("nodeName")),
        held_by=parse_held_by((meta.get("annotations") or {}).get(HELD_BY_ANNOTATION)),
    )


def parse_deployment(raw: Mapping[str, Any]) -> ObservedDeployment:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    annotations = meta.get("annotations")
    held_by = (annotations or {}).get(HELD_BY_ANNOTATION)
    return ObservedDeployment(
        name=str(meta.get("name")),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        generation=int(meta.get("generation") or 0),
        labels=dict(meta.get("labels") or {}),
        paused=bool(spec.get("paused")),
        held_by=parse_held_by(held_by),
        images=tuple(str(c.get("image")) for c in pod.get("containers") or () if c.get("image")),
        held_by_value=held_by if isinstance(held_by, str) else None,
        has_annotations=annotations is not None,
    )


async def _with_log_tail(
    api: KubeApi, namespace: str, pods: list[ObservedPod]
) -> tuple[ObservedPod, ...]:
    """Reads the log tail of the newest pod whose migrate container failed (status needs it)."""
    failed = [p for p in pods if p.terminated is not None and p.terminated.exit_code != 0]
    if not failed:
        return tuple(pods)
    newest = failed[-1]
    try:
        tail = await api.read_pod_log(
            namespace,
            newest.name,
            container=MIGRATE_CONTAINER,
            limit_bytes=LOG_TAIL_READ_BYTES,
            tail_lines=LOG_TAIL_LINES,
            terminated_uid=newest.uid,
        )
    except OperatorError:  # a missing log must not block recording the outcome
        tail = None
    return tuple(
        ObservedPod(**{**p.__dict__, "log_tail": tail}) if p is newest else p for p in pods
    )


def parse_job(raw: Mapping[str, Any], *, pods: tuple[ObservedPod, ...] = ()) -> ObservedJob:
    meta = raw.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = raw.get("status") or {}
    conditions = {
        c.get("type"): c for c in status.get("conditions") or () if c.get("status") == "True"
    }
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    owner = next(
        (
            o
            for o in meta.get("ownerReferences") or ()
            if o.get("controller") and o.get("kind") == KIND
        ),
        None,
    )
    containers = (
        ((raw.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers", [])
    )
    image = next((c.get("image") for c in containers if c.get("name") == MIGRATE_CONTAINER), None)
    return ObservedJob(
        name=str(meta.get("name")),
        uid=str(meta.get("uid", "")),
        owner_uid=owner.get("uid") if owner else None,
        generation=_int(labels.get(LABEL_GENERATION)),
        mode=str(labels.get(LABEL_MODE) or "apply"),
        attempt=_int(labels.get(LABEL_ATTEMPT)),
        image=image,
        deleting=bool(meta.get("deletionTimestamp")),
        complete="Complete" in conditions or "SuccessCriteriaMet" in conditions,
        failed=failed is not None,
        failure_reason=failed.get("reason") if failed else None,
        failure_message=failed.get("message") if failed else None,
        active=int(status.get("active") or 0),
        pods=pods,
        finished_at=parse_time(status.get("completionTime"))
        or parse_time((failed or {}).get("lastTransitionTime")),
    )


def parse_pod(raw: Mapping[str, Any]) -> ObservedPod:
    meta = raw.get("metadata") or {}
    statuses = (raw.get("status") or {}).get("containerStatuses") or ()
    migrate: Mapping[str, Any] = next(
        (s for s in statuses if s.get("name") == MIGRATE_CONTAINER), {}
    )
    state = migrate.get("state") or {}
    terminated, waiting = state.get("terminated"), state.get("waiting")
    return ObservedPod(
        name=str(meta.get("name")),
        uid=str(meta.get("uid") or ""),
        created_at=parse_time(meta.get("creationTimestamp")),
        terminated=None
        if terminated is None
        else Termination(
            exit_code=int(terminated.get("exitCode", 1)),
            reason=str(terminated.get("reason") or ""),
            message=str(terminated.get("message") or ""),
            finished_at=parse_time(terminated.get("finishedAt")),
        ),
        waiting_reason=waiting.get("reason") if waiting else None,
        waiting_message=waiting.get("message") if waiting else None,
        image_id=str(migrate.get("imageID") or "") or None,
    )


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None
